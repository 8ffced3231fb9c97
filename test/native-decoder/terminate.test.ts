// A reader that stops early terminates its decoding thread, which may be loading the addon at that
// moment. The addon's module set-up then runs in an environment that can no longer call into
// JavaScript, and a failed call there must not end the whole process: node-addon-api without
// NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS aborted it (SIGABRT, "Error::ThrowAsJavaScriptException
// napi_throw", seen once in test/format/worker.test.ts under load). Workers are terminated the
// moment they are about to load the addon, after a spin that moves the load across the
// termination; without the define, 300 of them aborted the process in every run tried.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import t from 'tap';
import { nativeDecoderPath } from '../../lib/native.js';

const addon = nativeDecoderPath();
const ROUNDS = 300;

t.test('workers terminated while loading the addon never abort the process', { skip: existsSync(addon) ? false : `the addon is not built (${addon})` }, async (t) => {
  const script = `
    import { Worker } from 'node:worker_threads';
    for (let i = 0; i < ${ROUNDS}; i++) {
      const w = new Worker(\`const { parentPort } = require('node:worker_threads'); parentPort.postMessage(0); for (let k = 0; k < \${(i % 50) * 2000}; k++); require(${JSON.stringify(addon)});\`, { eval: true, execArgv: [] });
      await new Promise((resolve) => w.once('message', resolve));
      await w.terminate();
    }
    // The addon still loads and works on a thread that is not terminated.
    const done = new Worker(\`const a = require(${JSON.stringify(addon)}); require('node:worker_threads').parentPort.postMessage(a.crc32(Buffer.from('123456789')));\`, { eval: true, execArgv: [] });
    console.log(JSON.stringify({ survived: ${ROUNDS}, crc: await new Promise((resolve) => done.once('message', resolve)) }));
    await done.terminate();
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  t.equal(r.signal, null, `not killed by a signal (${r.signal}): ${r.stderr.split('\n').find((l) => /FATAL|Error/.test(l)) ?? ''}`);
  t.equal(r.status, 0, r.stderr.trim().split('\n')[0] ?? '');
  t.same(JSON.parse(r.stdout.trim() || '{}'), { survived: ROUNDS, crc: 0xcbf43926 }, 'every worker came and went; the addon works after');
});
