#!/usr/bin/env node
// `pytest --heapprof` against a plain pytest run of the same generated suite of small tests
// (target: at most 1.15x by CPU time). Runs interleaved, medians of paired ratios, like bench/run.js; also its `pytest`
// section. Uses the checkout's python/ (PYTHONPATH) with plugin autoload off for both runs.
//
//   node bench/pytest.js [--python EXE] [--tests 500] [--reps 5]

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** A suite of `n` small tests: a little arithmetic and a few small containers each. */
function writeSuite(dir, n) {
  const perFile = 50;
  for (let f = 0; f * perFile < n; f++) {
    let src = 'import json\n\n';
    for (let i = f * perFile; i < Math.min(n, (f + 1) * perFile); i++) {
      src += `def test_small_${i}():\n    data = {"k%d" % j: list(range(j)) for j in range(${(i % 20) + 5})}\n    assert json.loads(json.dumps(data))["k3"] == [0, 1, 2]\n\n`;
    }
    writeFileSync(join(dir, `test_suite_${f}.py`), src);
  }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export function benchPytest({ python = 'python3', tests = 500, reps = 5, log = (m) => process.stderr.write(`${m}\n`) } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'hp-bench-pytest-'));
  try {
    writeSuite(dir, tests);
    const env = { ...process.env, PYTHONPATH: join(ROOT, 'python'), PYTEST_DISABLE_PLUGIN_AUTOLOAD: '1', PYTHONDONTWRITEBYTECODE: '1' };
    const base = [python, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-p', 'heapprof.pytest_plugin', dir];
    const configs = { plain: [], heapprof: ['--heapprof=' + join(dir, 'prof')] };
    const times = { plain: [], heapprof: [] };
    const cpus = { plain: [], heapprof: [] };
    // CPU time (user + system of pytest and anything it starts, from /usr/bin/time) is the
    // measure, as in bench/run.js: it holds on a loaded machine where wall time does not.
    const useTime = existsSync('/usr/bin/time');
    for (let r = 0; r < reps; r++) {
      for (const [name, extra] of Object.entries(configs)) {
        const argv = [...base.slice(1), ...extra];
        const t0 = process.hrtime.bigint();
        const p = useTime
          ? spawnSync('/usr/bin/time', ['-f', 'HPCPU %U %S', base[0], ...argv], { env, cwd: dir, encoding: 'utf8' })
          : spawnSync(base[0], argv, { env, cwd: dir, encoding: 'utf8' });
        const s = Number(process.hrtime.bigint() - t0) / 1e9;
        if (p.status !== 0) throw new Error(`pytest ${name} failed (${p.status}): ${p.stderr || p.stdout}`);
        times[name].push(s);
        const m = /HPCPU ([\d.]+) ([\d.]+)\s*$/.exec(p.stderr ?? '');
        cpus[name].push(m ? Number(m[1]) + Number(m[2]) : s);
      }
    }
    const plain = median(times.plain);
    const heapprof = median(times.heapprof);
    const cpuRatio = median(cpus.heapprof.map((x, i) => x / cpus.plain[i]));
    const result = {
      tests,
      reps,
      plainSeconds: plain,
      heapprofSeconds: heapprof,
      wallRatio: heapprof / plain,
      plainCpuSeconds: median(cpus.plain),
      heapprofCpuSeconds: median(cpus.heapprof),
      ratio: cpuRatio,
      measure: useTime ? 'cpu' : 'wall',
      loadavg: loadavg(),
      target: 1.15,
    };
    log(
      `pytest, ${tests} small tests: ${result.ratio.toFixed(2)}x by ${result.measure} time (median of ${reps} paired rounds; target <= 1.15x); ` +
        `wall: plain ${plain.toFixed(2)} s, --heapprof ${heapprof.toFixed(2)} s (${result.wallRatio.toFixed(2)}x); load average ${result.loadavg.map((x) => x.toFixed(1)).join(' ')}`,
    );
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { python: { type: 'string', default: 'python3' }, tests: { type: 'string', default: '500' }, reps: { type: 'string', default: '5' } } });
  const r = benchPytest({ python: values.python, tests: Number(values.tests), reps: Number(values.reps) });
  process.stdout.write(`${JSON.stringify(r)}\n`);
}
