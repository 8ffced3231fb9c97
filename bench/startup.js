// Start-up cost (`npm run bench -- --only startup`): every reader command's start against
// `node -e ""`, and hp-record on an empty script against plain python on it. Rounds interleave
// every command (these machines are noisy); each round's ratio to its own baseline, then the
// median of those ratios. Targets (issue 19): readers <= 1.5x node, hp-record <= python + 0.12 s.
//
// Commands run as a user runs them: bin/hp-x.js executed, so its shell line starts Node without
// NODE_EXTRA_CA_CERTS (doc/internals.md). The floors are measured without that variable too
// (`node -e ""` and the bare wrapper): with it, Node 20 builds its root certificate store at
// start-up, which would flatter every ratio. Where the environment sets it, one more row shows
// `node -e ""` as it starts here.

import { spawn } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { median } from './median.js';

/** A Node program that only runs python and exits with its status: what any Node front end costs at least. */
const WRAPPER = "require('child_process').spawn(process.argv[1], [process.argv[2]], { stdio: 'inherit' }).on('exit', (c) => process.exit(c))";

const READERS = ['hp-events', 'hp-stats', 'hp-history', 'hp-snapshot', 'hp-collapse', 'hp-chart', 'hp-pprof', 'hp-flow', 'hp-diff', 'hp-report'];


/** Wall seconds and CPU seconds (user + system, children included, from /usr/bin/time when installed). */
function timed(cmd, args, cwd, env) {
  return new Promise((resolve, reject) => {
    const useTime = existsSync('/usr/bin/time');
    const t0 = process.hrtime.bigint();
    const child = spawn(useTime ? '/usr/bin/time' : cmd, useTime ? ['-f', '%U %S', cmd, ...args] : args, { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      let cpu = null;
      if (useTime) {
        const lines = err.trimEnd().split('\n');
        const [user, sys] = lines.pop().split(' ').map(Number);
        cpu = user + sys;
        err = lines.join('\n');
      }
      resolve({ code, wall, cpu, err });
    });
  });
}

/**
 * Runs the start-up rounds. Each reader is started the cheapest way that still loads the
 * command (`--help`, which parses options and prints the usage); hp-stats also on a missing
 * profile (`hp-stats x`: option parsing, opening, a one-line error).
 */
export async function benchStartup({ root, python, outDir, reps, log }) {
  const node = process.execPath;
  const empty = join(outDir, 'startup-empty.py');
  writeFileSync(empty, '');
  const base = join(outDir, 'startup-empty');
  const bin = (name) => join(root, 'bin', `${name}.js`);
  const floor = { ...process.env };
  delete floor.NODE_EXTRA_CA_CERTS;
  delete floor.HEAPPROF_NODE_EXTRA_CA_CERTS;
  const cases = [
    { name: 'node -e ""', cmd: node, args: ['-e', ''], env: floor },
    ...READERS.map((r) => ({ name: `${r} --help`, cmd: bin(r), args: ['--help'] })),
    { name: 'hp-stats x (no such profile)', cmd: bin('hp-stats'), args: ['x'] },
    { name: 'hp-snapshot --version', cmd: bin('hp-snapshot'), args: ['--version'] },
    { name: 'python empty.py', cmd: python, args: [empty] },
    { name: 'hp-record empty.py', cmd: bin('hp-record'), args: ['-q', '--force', '--python', python, '-o', base, empty] },
    // The floor of any Node front end: start Node, spawn python, wait, exit with its status.
    { name: 'bare node wrapper empty.py', cmd: node, args: ['-e', WRAPPER, python, empty], env: floor },
    ...(process.env.NODE_EXTRA_CA_CERTS !== undefined ? [{ name: 'node -e "" with NODE_EXTRA_CA_CERTS as set here', cmd: node, args: ['-e', ''], env: process.env }] : []),
    // The same readers from dist/'s modules instead of their one-file bundle (lib/start.ts), side by side.
    ...['hp-events', 'hp-report'].map((r) => ({ name: `${r} --help from its modules`, cmd: bin(r), args: ['--help'], env: { ...process.env, HP_NO_BUNDLE: '1' }, modules: true })),
    { name: 'hp-stats x from its modules', cmd: bin('hp-stats'), args: ['x'], env: { ...process.env, HP_NO_BUNDLE: '1' }, modules: true },
  ];
  const walls = cases.map(() => []);
  const cpus = cases.map(() => []);
  try {
    for (let round = 0; round < reps; round++) {
      log(`startup: round ${round + 1}/${reps}`);
      for (const [i, c] of cases.entries()) {
        const r = await timed(c.cmd, c.args, outDir, c.env ?? process.env);
        const expected = c.name.startsWith('hp-stats x') ? 1 : 0;
        if (r.code !== expected) throw new Error(`${c.name}: exit ${r.code}, expected ${expected}: ${r.err.trim().split('\n')[0]}`);
        walls[i].push(r.wall);
        cpus[i].push(r.cpu);
      }
    }
  } finally {
    for (const ext of ['.hpm', '.hpd']) rmSync(`${base}${ext}`, { force: true });
    rmSync(empty, { force: true });
  }
  const row = (i, baseline) => {
    const haveCpu = cpus[i].every((x) => x !== null);
    return {
      name: cases[i].name,
      wallS: median(walls[i]),
      cpuS: haveCpu ? median(cpus[i]) : null,
      // Per-round ratios to the baseline of the same round, then their median.
      wallRatio: median(walls[i].map((x, k) => x / walls[baseline][k])),
      cpuRatio: haveCpu ? median(cpus[i].map((x, k) => x / cpus[baseline][k])) : null,
      // Per-round difference to the baseline (what hp-record adds to python), median.
      wallOverS: median(walls[i].map((x, k) => x - walls[baseline][k])),
      cpuOverS: haveCpu ? median(cpus[i].map((x, k) => x - cpus[baseline][k])) : null,
    };
  };
  const nodeIdx = 0;
  const pyIdx = cases.findIndex((c) => c.name === 'python empty.py');
  const readers = cases.map((_, i) => i).filter((i) => i !== nodeIdx && i < pyIdx).map((i) => row(i, nodeIdx));
  return {
    reps,
    node: row(nodeIdx, nodeIdx),
    readers,
    worstReaderWallRatio: Math.max(...readers.map((r) => r.wallRatio)),
    python: row(pyIdx, pyIdx),
    record: row(pyIdx + 1, pyIdx),
    wrapper: row(pyIdx + 2, pyIdx),
    // hp-record against the bare wrapper, round by round: what hp-record itself adds.
    recordOverWrapperS: median(walls[pyIdx + 1].map((x, k) => x - walls[pyIdx + 2][k])),
    // Node as it starts in this environment when NODE_EXTRA_CA_CERTS is set, against the floor.
    nodeWithCerts: cases[pyIdx + 3]?.name.startsWith('node -e') ? row(pyIdx + 3, nodeIdx) : null,
    // Against node -e "", as the rows above.
    modules: cases.map((c, i) => (c.modules ? row(i, nodeIdx) : null)).filter((r) => r !== null),
  };
}
