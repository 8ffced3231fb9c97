// Numbers that must agree between commands and between ways of reading one profile
// (QA of wrong numbers): each test reproduces one defect that was found.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { writeProfile } from '../../lib/format/hpx-writer.js';
import { tmpDir } from '../helpers/profiles.js';
import { REPO } from '../helpers/python.js';

const trace = { id: 1, frames: [{ function: 'f', file: 'a.py', line: 3 }], dropped: 0 };

function hp(cmd: string, args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [join(REPO, 'bin', `hp-${cmd}.js`), ...args], { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
}

function lines(out: string): Array<Record<string, unknown>> {
  return out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

t.test('hp-history lists the marks of piped events as it does those of the profile', async (t) => {
  const base = join(tmpDir(), 'm');
  await writeProfile(base, {
    header: { sampling: { kind: 'table', bounds: [], probs: [] } },
    traces: [trace],
    eventsPerBlock: 2,
    events: [
      { op: 'alloc', timeUs: 100_000, trace: 1, size: 100 },
      { op: 'mark', timeUs: 250_000, size: 0, label: 'loaded' },
      { op: 'alloc', timeUs: 300_000, trace: 1, size: 50 },
      { op: 'mark', timeUs: 700_000, size: 0, label: 'done' },
      { op: 'free', timeUs: 900_000, trace: 1, size: 100 },
    ],
  });
  const events = hp('events', [base]);
  t.equal(events.status, 0, events.stderr);
  for (const gran of [['--granularity', '0.1'], []]) {
    const file = hp('history', [base, '--json', '-q', ...gran]);
    const piped = hp('history', ['-', '--json', '-q', ...gran], events.stdout);
    t.equal(piped.status, 0, piped.stderr);
    const marksOf = (out: string): unknown[] => lines(out).flatMap((l) => (Array.isArray(l.marks) ? l.marks : []));
    t.same(marksOf(file.stdout), [{ t: 0.25, label: 'loaded' }, { t: 0.7, label: 'done' }], `profile ${gran.join(' ')}`);
    t.equal(piped.stdout, file.stdout, `piped events give the same lines ${gran.join(' ')}`);
  }
  const chart = hp('history', ['-', '--no-json', '-q', '--granularity', '0.1'], events.stdout);
  t.match(chart.stdout, /marks:\n.*loaded\n.*done\n/, 'the chart lists them under it');
});

t.test('hp-history --by pid: a process that has not started yet holds exactly 0, with no interval', async (t) => {
  const dir = tmpDir();
  const sampling = { kind: 'table' as const, bounds: [128], probs: [0.01, 1] };
  const histogram = [{ count: 10, bytes: 640, sampled: 1 }];
  for (const [name, pid, startTimeUs] of [['run', 100, 1_000_000_000], ['run.200', 200, 1_000_500_000]] as const) {
    await writeProfile(join(dir, name), {
      header: { sampling, pid, startTimeUs },
      traces: [trace],
      histogram,
      events: [
        { op: 'alloc', timeUs: 50_000, trace: 1, size: 64 },
        { op: 'alloc', timeUs: 60_000, trace: 1, size: 1000 },
      ],
    });
  }
  const hist = hp('history', [join(dir, 'run'), join(dir, 'run.200'), '--by', 'pid', '--granularity', '0.1', '--json', '-q']);
  t.equal(hist.status, 0, hist.stderr);
  const child = lines(hist.stdout).filter((l) => l.pid === 200);
  const before = child.filter((l) => (l.t as number) < 0.5);
  t.ok(before.length >= 4, 'buckets before the second process started');
  for (const l of before) {
    t.equal(l.live_bytes, 0);
    t.notOk('live_bytes_hi' in l, `t=${String(l.t)}: no interval before the process started`);
    t.notOk('live_count_hi' in l);
  }
  const after = child.find((l) => l.t === 0.6)!;
  t.equal(after.live_bytes, 6400 + 1000);
  t.ok((after.live_bytes_hi as number) > 7400, 'an interval once it runs');
});
