// Regressions where a command did not do what its manual page or --help says: each test failed
// before its fix.

import { existsSync, readFileSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { writeProfile, type ProfileSpec } from '../../lib/format/hpx-writer.js';
import { tmpDir } from '../helpers/profiles.js';
import { sh } from '../fixtures/analysis/run.js';

type Line = Record<string, unknown>;
const ndjson = (text: string): Line[] =>
  text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);

/** Two allocations of one trace, at 0.1 s and 0.9 s, recording everything. */
const TWO_ALLOCS: ProfileSpec = {
  header: { sampling: { kind: 'table', bounds: [], probs: [] } },
  traces: [{ id: 1, frames: [{ function: 'f', file: 'a.py', line: 3 }], dropped: 0 }],
  events: [
    { op: 'alloc', timeUs: 100_000, trace: 1, size: 100 },
    { op: 'alloc', timeUs: 900_000, trace: 1, size: 50 },
  ],
};

t.test('hp-events --to stops before the end marker, wherever the recorder put it (hp-events(1): "a --to window stops before it")', async (t) => {
  // One block holds every event and the end marker, as a short run's last flush does: the
  // decoder passes END through any window, and hp-events wrote it at 0.9 s under --to 0.5.
  const dir = tmpDir('qa-docs-end-');
  const base = join(dir, 'p');
  await writeProfile(base, TWO_ALLOCS);
  const whole = ndjson(sh(`hp-events ${base}`).stdout);
  t.ok(whole.some((l) => l.op === 'end'), 'the profile has its end marker');
  t.equal(whole.at(-1)!.complete, true);
  for (const command of [`hp-events ${base} --to 0.5`, `hp-events ${base} | hp-events - --to 0.5`]) {
    const r = sh(command);
    t.equal(r.status, 0, r.stderr);
    const lines = ndjson(r.stdout);
    const events = lines.filter((l) => l.type === 'event');
    t.same(
      events.map((l) => l.t),
      [0.1],
      `${command}: only the events before --to`,
    );
    t.same(lines.at(-1)!.type, 'summary');
    t.equal(lines.at(-1)!.complete, false, `${command}: the window stops before the end marker`);
    t.equal(lines.at(-1)!.events, 1, `${command}: events counts the event lines written`);
  }
  // What a reader of the window makes of it: the end of the window, not the run's end at 0.9 s.
  const snap = ndjson(sh(`hp-events ${base} --to 0.5 | hp-snapshot - --at end --json -q`).stdout)[0]!;
  t.equal(snap.at, 0.1);
  t.equal(snap.bytes, 100);
  const human = sh(`hp-events ${base} --to 0.5 --no-json`);
  t.equal(human.status, 0, human.stderr);
  t.notMatch(human.stdout, /\bend\b/, 'the readable view leaves it out too');
  // A window open at its end keeps it.
  const all = ndjson(sh(`hp-events ${base} --from 0.05`).stdout);
  t.ok(all.some((l) => l.op === 'end'));
  t.equal(all.at(-1)!.complete, true);
});

t.test('hp-diff --help offers only the groupings hp-diff takes (hp-diff(1): trace|line|function|file)', async (t) => {
  const help = sh('hp-diff --help').stdout;
  const line = help.split('\n').find((l) => /^\s+--group-by\b/.test(l))!;
  t.ok(line, help);
  t.notMatch(line, /thread/, `--group-by thread is refused, so --help does not offer it: ${line}`);
  t.match(line, /\[choices: "trace", "line", "function", "file", "stack"\]/);
  const r = sh('hp-diff app --at 0.5 --at end --group-by thread');
  t.equal(r.status, 2, 'still a usage error');
  t.match(r.stderr, /group-by/);
});

t.test('hp-history --chart --json is a usage error, as hp-diff --table --json is (--chart is --no-json by an older name)', async (t) => {
  const r = sh('hp-history app --chart --json');
  t.equal(r.status, 2, 'it drew the chart and ignored --json');
  t.equal(r.stdout, '');
  t.equal(r.stderr, 'hp-history: --chart and --json ask for two outputs: --chart is the chart (an older name for --no-json)\n');
  const d = sh('hp-diff app --at 0.5 --at end --table --json');
  t.equal(d.status, 2);
  const chart = sh('hp-history app --chart -q');
  t.equal(chart.status, 0, chart.stderr);
  t.match(chart.stdout, /^live heap/);
});

t.test('hp-collapse reads profiles as every reader does: --strict makes damage an error, --v1-weights weighs 1.0.x files (hpx(5))', async (t) => {
  const dir = tmpDir('qa-docs-collapse-');
  const base = join(dir, 'cut');
  await writeProfile(base, {
    ...TWO_ALLOCS,
    eventsPerBlock: 1,
  });
  // Cut the last block of the .hpd in half: a truncated tail, recoverable damage.
  const hpd = `${base}.hpd`;
  truncateSync(hpd, statSync(hpd).size - 3);
  const loose = sh(`hp-collapse ${base}`);
  t.equal(loose.status, 0, loose.stderr);
  t.match(loose.stderr, /truncated last block/);
  const strict = sh(`hp-collapse ${base} --strict`);
  t.equal(strict.status, 1, `--strict: an error, as in hp-snapshot: ${strict.stderr}`);
  t.equal(sh(`hp-snapshot ${base} --strict`).status, 1);
  t.equal(strict.stdout, '');
  const v1 = fileURLToPath(new URL('../fixtures/format/v1', import.meta.url));
  const total = (text: string): number => text.trim().split('\n').reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  const recorded = sh(`hp-collapse ${v1} --alloc -q`);
  const stored = sh(`hp-collapse ${v1} --alloc -q --v1-weights stored`);
  t.equal(recorded.status, 0, recorded.stderr);
  t.equal(stored.status, 0, stored.stderr);
  t.ok(total(stored.stdout) > total(recorded.stdout), `stored 1/p weights (${total(stored.stdout)}) exceed weight 1 (${total(recorded.stdout)})`);
  t.equal(sh(`hp-collapse ${v1} --v1-weights maybe`).status, 2);
});

t.test("-o refuses every file the command reads (hp-flow(1), hp-pprof(1), hp-report(1)): a quoted glob's profiles, and the seek index", async (t) => {
  const dir = tmpDir('qa-docs-output-');
  for (const name of ['w', 'w.42']) {
    await writeProfile(join(dir, name), {
      header: { sampling: { kind: 'table', bounds: [], probs: [] } },
      traces: [{ id: 1, frames: [{ function: 'f', file: 'a.py', line: 3 }], dropped: 0 }],
      events: [{ op: 'alloc', timeUs: 100_000, trace: 1, size: 100 }],
    });
  }
  const hpd = readFileSync(join(dir, 'w.hpd'));
  // 'w.*' is w and w.42, read as one: writing its output over w.hpd destroyed the profile.
  for (const [command, out] of [
    ["hp-flow 'w.*'", 'w.hpd'],
    ["hp-pprof 'w.*'", 'w.42.hpm'],
    ["hp-report 'w.*'", 'w.hpd'],
  ] as const) {
    const r = sh(`cd ${dir} && ${command} -o ${out}`);
    t.equal(r.status, 2, `${command} -o ${out}: ${r.stderr}`);
    t.match(r.stderr, /writing it would replace what is read/);
  }
  t.same(readFileSync(join(dir, 'w.hpd')), hpd, 'the profile is intact');
  t.equal(sh(`hp-snapshot ${dir}/w -q --json`).status, 0);
  // The seek index, BASE.hpi, is read (and built on first use by a large profile's reader) even
  // when it is not there yet.
  for (const command of ['hp-flow w', 'hp-pprof w', 'hp-report w', "hp-flow 'w.*'"]) {
    const r = sh(`cd ${dir} && ${command} -o ./w.hpi`);
    t.equal(r.status, 2, `${command} -o ./w.hpi: ${r.stderr}`);
    t.match(r.stderr, /w\.hpi, the seek index of the input/);
  }
  t.notOk(existsSync(join(dir, 'w.hpi')));
  const fine = sh(`cd ${dir} && hp-flow 'w.*' -o w.dot -q && hp-pprof w -o w.pb.gz -q`);
  t.equal(fine.status, 0, fine.stderr);
});
