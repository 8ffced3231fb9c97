// How bin/hp-* start: the command's bundle, dist/bundle/hp-X.cjs (scripts/build.mjs), when it is
// there, every module of dist/ it was made from has the size it had then and (outside
// node_modules) is not newer than it, and Node runs without concurrent recompilation; else the
// command's module, dist/cmd/X.js. HP_NO_BUNDLE=1 always takes the
// modules (the tests compare both ways).
//
// Why the flag: Node 20 can deadlock at exit while a TurboFan job runs on a worker thread
// (nodejs/node#54918), and one large script gives it more such jobs: with the bundle, readers hung
// at exit in three of about six full test runs, before the flag was on bin/'s shell line. `node
// bin/hp-X.js`, which does not read that line, runs itself again with the flag (runAgainWithFlag).

import { readFileSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import { CODE_DIR, load } from './where.cjs';
import { nonUtf8Arguments } from './raw-args.js';

const NO_CONCURRENT_RECOMPILATION = '--no-concurrent-recompilation';

interface Command {
  main(argv: string[]): void;
}

/** The bundle of command `name` (hp-X), if it is up to date with dist/ and safe to run; else null. */
export function freshBundle(name: string, dist: string = CODE_DIR, env: NodeJS.ProcessEnv = process.env, execArgv: readonly string[] = process.execArgv): string | null {
  if (env.HP_NO_BUNDLE === '1' || !execArgv.includes(NO_CONCURRENT_RECOMPILATION)) return null;
  const path = join(dist, 'bundle', `${name}.cjs`);
  let built: number;
  let inputs: unknown;
  try {
    built = statSync(path).mtimeMs;
    inputs = JSON.parse(readFileSync(join(dist, 'bundle', `${name}.inputs.json`), 'utf8'));
  } catch {
    return null;
  }
  if (inputs === null || typeof inputs !== 'object' || Array.isArray(inputs) || Object.keys(inputs).length === 0) return null;
  // An installed copy: npm unpacks a package giving each file the time it writes it, in the
  // tarball's order (dist/bundle/ before most modules), so there times say nothing; sizes do.
  const installed = dist.split(sep).includes('node_modules');
  // A module rewritten since (tsc run again without the bundler, a patch applied in place) or
  // gone: the bundle is stale.
  for (const [rel, size] of Object.entries(inputs as Record<string, unknown>)) {
    const st = statSync(join(dist, rel), { throwIfNoEntry: false });
    if (st === undefined || st.size !== size || (!installed && st.mtimeMs > built)) return null;
  }
  return path;
}

/** Signals a reader run again (runAgainWithFlag) is sent through the first process. */
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR2', 'SIGWINCH'] as const;

/** Run command `name` (hp-X) with `argv`, from its bundle when fresh. */
export function start(name: string, argv: string[]): void {
  // Not with an argument that is not UTF-8: it cannot be passed on as it is (lib/raw-args.ts).
  if (name !== 'hp-record' && !process.execArgv.includes(NO_CONCURRENT_RECOMPILATION) && process.env.HP_RUN_AGAIN !== '0' && nonUtf8Arguments().length === 0) {
    runAgainWithFlag(name, argv);
    return;
  }
  leaveWithParent();
  const path = freshBundle(name) ?? join(CODE_DIR, 'cmd', `${name.replace(/^hp-/, '')}.js`);
  (load(path) as Command).main(argv);
}

/**
 * Node 20 deadlocks now and then where its event loop ends or at exit while a TurboFan job runs
 * on a worker thread (nodejs/node#54918): seen with `node bin/hp-X.js`, which starts without the
 * shell line's flag, twice in one day of test runs (a reader that had written everything never
 * exited). V8 reads the flag only as it starts, so a reader started without it runs itself again
 * with it: this process passes its signals on and ends as the second one does (its status, or
 * the same signal). HP_RUN_AGAIN=0 turns this off. hp-record is left as it is: its shell line
 * sets up more than the flag, and it runs the program under it.
 */
function runAgainWithFlag(name: string, argv: string[]): void {
  const { spawn } = process.getBuiltinModule('node:child_process') as typeof import('node:child_process');
  const child = spawn(process.execPath, [NO_CONCURRENT_RECOMPILATION, ...process.execArgv, process.argv[1]!, ...argv], {
    stdio: 'inherit',
    env: { ...process.env, HP_PARENT_PID: String(process.pid) },
  });
  for (const sig of FORWARDED) process.on(sig, () => child.kill(sig));
  child.on('error', (e) => {
    process.stderr.write(`${name}: cannot run node again with ${NO_CONCURRENT_RECOMPILATION}: ${e.message}\n`);
    process.exitCode = 1;
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      for (const sig of FORWARDED) process.removeAllListeners(sig);
      process.kill(process.pid, signal);
      return;
    }
    process.exitCode = code ?? 1;
  });
}

/**
 * Run again by runAgainWithFlag: end if the first process is gone (killed by SIGKILL, which it
 * cannot pass on). The kernel does it (the readers' addon, PR_SET_PDEATHSIG), also while this
 * process blocks in a synchronous read; without the addon, a timer checks twice a second.
 */
function leaveWithParent(): void {
  const parent = Number(process.env.HP_PARENT_PID);
  delete process.env.HP_PARENT_PID;
  if (!(parent > 0)) return;
  try {
    const { nativeDecoder } = load(join(CODE_DIR, 'native.js')) as typeof import('./native.js');
    if (nativeDecoder()?.dieWithParent(parent)) return;
  } catch {
    // no addon: the timer below
  }
  setInterval(() => {
    if (process.ppid !== parent) process.exit(129); // as a hang-up would end it
  }, 500).unref();
}
