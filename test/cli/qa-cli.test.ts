// Regressions from the independent CLI testers' report: each test failed before its fix.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { tmpDir } from '../helpers/profiles.js';
import { sh } from '../fixtures/analysis/run.js';

t.test('hp-report builds its page from events NDJSON as from the profile it came from', async (t) => {
  const dir = tmpDir('qa-report-');
  const r = sh(`hp-events app > ${dir}/app.ndjson && hp-report ${dir}/app.ndjson -o ${dir}/n.html -q && hp-report app -o ${dir}/p.html -q`);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr, '');
  const data = (file: string): Record<string, unknown> => {
    const html = readFileSync(join(dir, file), 'utf8');
    const json = JSON.parse(/<script id="hp-data" type="application\/json">(.*?)<\/script>/s.exec(html)![1]!) as Record<string, unknown>;
    delete json.title;
    return json;
  };
  t.same(data('n.html'), data('p.html'), 'the same data, but for the title');
  const piped = sh(`hp-events app | hp-report - -o ${dir}/s.html`);
  t.equal(piped.status, 2);
  t.match(piped.stderr, /^hp-report: the report reads its input twice: name a profile or an NDJSON file, not stdin\n$/);
});
