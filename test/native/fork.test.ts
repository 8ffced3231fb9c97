// Fork, on every CPython 3.9-3.13 found: an os.fork() child leaving with os._exit, a
// multiprocessing Process and a Pool (fork). Without follow_fork the parent's profile stays valid
// and no child writes; with it every child has its own complete BASE.PID profile.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { tmpDir } from '../helpers/profiles.js';
import { NATIVE_FIXTURES, readRecording, runPython, supportedPythons, unmatchedFrees } from '../helpers/python.js';

interface ForkReport {
  parent: number;
  children: Array<{ pid: number; exit: number }>;
  pool_pids: number[];
  pool_task_pids: number[];
  pool_total: number;
  exec_only: number;
}

for (const py of supportedPythons()) {
  for (const follow of [false, true]) {
    t.test(`CPython ${py.version}: fork ${follow ? 'with' : 'without'} follow_fork`, async (t) => {
      const dir = tmpDir();
      const base = join(dir, 'run');
      const out = join(dir, 'report.json');
      const r = runPython(py, [join(NATIVE_FIXTURES, 'fork.py'), base, follow ? '1' : '0', out]);
      t.equal(r.code, 0, r.stderr);
      // The recorder's own thread is stopped over fork(): CPython 3.12+ would otherwise warn.
      t.notMatch(r.stderr, /multi-threaded|DeprecationWarning/, 'no fork-with-threads warning');
      const report = JSON.parse(readFileSync(out, 'utf8')) as ForkReport;
      t.same(report.children.map((c) => c.exit), [7, 0], 'children ran and exited as programmed');
      t.equal(report.pool_total, 6 * 200 + 15);

      const parent = await readRecording(base);
      t.same(parent.issues, [], 'parent profile reads without issues');
      t.equal(parent.complete, true, 'parent profile complete');
      t.equal(parent.header.pid, report.parent);
      t.equal(unmatchedFrees(parent.events), 0);
      t.ok(parent.events.some((e) => e.op === 'alloc' && e.size === 5001), 'parent allocations recorded');
      t.notOk(parent.events.some((e) => e.op === 'alloc' && e.size === 4001), 'no child allocation in the parent profile');

      const childFiles = readdirSync(dir).filter((f) => /^run\.\d+\.hpm$/.test(f));
      if (!follow) {
        t.same(childFiles, [], 'children write nothing');
        return;
      }
      const childPids = childFiles.map((f) => Number(f.split('.')[1]));
      for (const c of report.children) t.ok(childPids.includes(c.pid), `child ${c.pid} has a profile`);
      for (const pid of report.pool_pids) t.ok(childPids.includes(pid), `pool worker ${pid} has a profile`);
      for (const pid of report.pool_task_pids) t.ok(report.pool_pids.includes(pid), `task ran in pool worker ${pid}`);
      t.notOk(childPids.includes(report.exec_only), 'a child that only execs leaves no profile');
      t.same(
        childPids.sort((a, b) => a - b),
        [...report.children.map((c) => c.pid), ...report.pool_pids].sort((a, b) => a - b),
        'no other child profiles',
      );
      for (const pid of childPids) {
        const child = await readRecording(join(dir, `run.${pid}`));
        t.same(child.issues, [], `child ${pid}: reads without issues`);
        t.equal(child.complete, true, `child ${pid}: complete although it left through os._exit`);
        t.equal(child.header.pid, pid);
        t.equal(child.header.ppid, report.parent);
        t.not(child.header.profileId, parent.header.profileId, 'a profile id of its own');
        t.equal(unmatchedFrees(child.events), 0, `child ${pid}: frees only of its own allocations`);
      }
      const forked = await readRecording(join(dir, `run.${report.children[0]!.pid}`));
      t.ok(forked.events.some((e) => e.op === 'alloc' && e.size === 4001), 'the os.fork child recorded its allocations');
    });
  }
}
