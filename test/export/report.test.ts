// hp-report in a real browser (Debian's chromium, driven by playwright-core): the page loads with
// no console errors and no network requests, the plot and the flame graph draw something, and
// clicking another time on the plot redraws the flame graph for that time; search, import
// hiding, range high-water marks, per-frame counts in the tooltip, per-domain series and the
// thread menu (a written --native profile and a real hp-record --native recording). Also at
// scale: a profile with 10^5 traces makes a page that stays small and responsive.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeProfile } from '../../lib/format/hpx.js';
import { bigSpec } from '../fixtures/export/big.js';
import { FIXTURES, ensureTool, run, writeNativeReportProfile } from '../fixtures/export/support.js';
import { tmpDir } from '../helpers/profiles.js';
import { NATIVE_FIXTURES, NATIVE_LIB, REPO as ROOT_DIR, supportedPythons } from '../helpers/python.js';

const CHROMIUM = '/usr/bin/chromium';
const missing = ensureTool('chromium', 'chromium');

interface PageState {
  title: string;
  point: string | null;
  livePath: number;
  bandPath: number;
  circles: number;
  inkPixels: number;
  colours: number;
  hash: number;
  tableRows: number;
}

if (missing) {
  t.comment(`skipping the browser tests: ${missing}`);
  t.pass('skipped: no chromium');
} else {
  const { chromium } = await import('playwright-core');
  const userDataDir = tmpDir('hp-chromium-');
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  t.teardown(async () => {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  });

  const open = async (file: string): Promise<{ page: import('playwright-core').Page; problems: string[]; requests: string[] }> => {
    const page = await context.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      // The test's own pixel readback (getImageData, twice) draws a performance hint from Chromium.
      if (m.type() === 'warning' && /willReadFrequently/.test(m.text())) return;
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${String(e)}`));
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    return { page, problems, requests };
  };

  const state = (page: import('playwright-core').Page): Promise<PageState> =>
    page.evaluate(() => {
      const canvas = document.getElementById('flame') as HTMLCanvasElement;
      const ctx = canvas.getContext('2d')!;
      const img = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      let ink = 0;
      let hash = 0;
      const colours = new Set<number>();
      for (let i = 0; i < img.length; i += 4) {
        if (img[i + 3]! > 0) {
          ink++;
          colours.add((img[i]! << 16) | (img[i + 1]! << 8) | img[i + 2]!);
        }
        hash = (Math.imul(hash, 31) + img[i]! + 3 * img[i + 1]! + 7 * img[i + 2]! + 11 * img[i + 3]!) | 0;
      }
      return {
        title: document.getElementById('flame-title')!.textContent ?? '',
        point: canvas.getAttribute('data-point'),
        livePath: (document.getElementById('live')?.getAttribute('d') ?? '').length,
        bandPath: (document.getElementById('band')?.getAttribute('d') ?? '').length,
        circles: document.querySelectorAll('#plot circle').length,
        inkPixels: ink,
        colours: colours.size,
        hash,
        tableRows: document.querySelectorAll('#sites-body tr').length,
      };
    });

  t.test('the fixture report: loads clean, draws, and clicking a time redraws the flame graph', async (t) => {
    const dir = t.testdir();
    const html = join(dir, 'report.html');
    const res = await run('hp-report', [join(FIXTURES, 'app'), '-o', html, '-q']);
    t.equal(res.code, 0, res.stderr);
    const text = readFileSync(html, 'utf8');
    t.notMatch(text, /\b(src|href)=["']?https?:/i, 'no external resources');
    const { page, problems, requests } = await open(html);
    const before = await state(page);
    t.same(problems, [], 'no console errors or warnings');
    t.same(requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:')), [], 'no network requests');
    t.ok(before.livePath > 100, 'the live-bytes line is drawn');
    t.ok(before.bandPath > 100, 'the error band is drawn');
    t.ok(before.circles > 50, `points on the plot (${before.circles})`);
    t.match(before.title, /^Peak: live heap at 5\.3 s: 76\.6 MiB/, 'the peak is shown first');
    t.ok(before.inkPixels > 10000, `the flame graph is not blank (${before.inkPixels} pixels)`);
    t.ok(before.colours > 3, 'and has several colours');
    t.ok(before.tableRows >= 4, 'top sites table filled');
    t.match(await page.locator('#sites-body tr').first().textContent(), /grow \(cache\.py:15\)/, 'largest site at the peak is the spike');

    // Click late in the run (after the spike was freed, when the strings exist).
    const box = (await page.locator('#plot').boundingBox())!;
    await page.mouse.click(box.x + box.width * 0.9, box.y + box.height / 2);
    const after = await state(page);
    t.not(after.point, before.point, 'another point is selected');
    t.not(after.title, before.title, 'the flame graph title follows the click');
    t.match(after.title, /live heap at 9\.\d+ s/);
    t.not(after.hash, before.hash, 'the flame graph pixels changed');
    t.ok(after.inkPixels > 10000, 'and are still not blank');
    t.match(await page.locator('#sites-body').textContent(), /make_strings \(util\.py:20\)/, 'the table follows too');
    t.same(problems, [], 'still no console errors');
    await page.close();
  });

  t.test('search highlights frames, import machinery is hidden by default, a drag shows high-water marks', async (t) => {
    const dir = t.testdir();
    // A small profile whose heap passes through importlib's frames, as a real import does.
    const base = join(dir, 'imports');
    const main = { function: '<module>', file: 'main.py', line: 1 };
    const bootstrap = { function: '_find_and_load', file: '<frozen importlib._bootstrap>', line: 1007 };
    const exec = { function: 'exec_module', file: '<frozen importlib._bootstrap_external>', line: 940 };
    const table = { function: 'build_table', file: 'pkg/tables.py', line: 12 };
    const cache = { function: 'fill_cache', file: 'pkg/cache.py', line: 40 };
    await writeProfile(base, {
      header: { startTimeUs: 1_764_000_000_000_000, argv: ['main.py'], sampling: { kind: 'table', bounds: [128, 8192], probs: [1e-4, 0.1] } },
      traces: [
        { id: 1, frames: [table, exec, bootstrap, main], dropped: 0 },
        { id: 2, frames: [cache, main], dropped: 0 },
      ],
      events: [
        { op: 'alloc', timeUs: 100_000, trace: 1, size: 3_000_000 },
        { op: 'alloc', timeUs: 1_000_000, trace: 2, size: 5_000_000 },
        { op: 'free', timeUs: 2_000_000, trace: 2, size: 5_000_000 },
        { op: 'alloc', timeUs: 3_000_000, trace: 2, size: 1_000_000 },
        { op: 'alloc', timeUs: 4_000_000, trace: 1, size: 500_000 },
      ],
      eventsPerBlock: 4096,
    });
    const html = join(dir, 'imports.html');
    const res = await run('hp-report', [base, '-o', html, '--at', 'end', '-q']);
    t.equal(res.code, 0, res.stderr);
    const { page, problems } = await open(html);
    const attr = (name: string): Promise<number> => page.evaluate((n) => Number(document.getElementById('flame')!.getAttribute(n)), name);
    // A profile without threads, domains or RSS: no thread filter, only the live heap drawn.
    t.equal(await page.isVisible('#thread'), false, 'no thread filter without threads');
    t.equal(await page.locator('#plot-legend').getAttribute('data-series'), 'live', 'no domain or RSS series');
    t.equal(await page.locator('#plot path.series').count(), 0);
    t.equal(await page.locator('#rss').count(), 0);
    t.equal(await page.isChecked('#hide-import'), true, 'hide import machinery is on by default');
    const shownHidden = await attr('data-frames');
    await page.uncheck('#hide-import');
    const shownAll = await attr('data-frames');
    t.equal(shownAll - shownHidden, 2, `the two importlib frames appear when unchecked (${shownHidden} -> ${shownAll})`);
    await page.check('#hide-import');
    t.equal(await attr('data-frames'), shownHidden, 'and go again');

    await page.fill('#search', 'tables.py');
    t.equal(await attr('data-matches'), 1, 'one frame matches tables.py');
    t.match(await page.locator('#search-info').textContent(), /^1 frame match, 3\.3 MiB \(\d+\.\d%\)$/);
    await page.fill('#search', 'main');
    t.equal(await attr('data-matches'), 1, '<module> (main.py) matches by file');
    await page.fill('#search', 'no such frame');
    t.equal(await attr('data-matches'), 0);
    t.match(await page.locator('#search-info').textContent(), /^0 frames match/);
    await page.fill('#search', '');
    t.equal(await page.locator('#search-info').textContent(), '');

    // At the end the cache holds 1 MB; over the whole run its high-water mark is 5 MB (at 1 s).
    t.match(await page.locator('#sites-title').textContent(), /^Top sites at/);
    const box = (await page.locator('#plot').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.1, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2, { steps: 5 });
    await page.mouse.move(box.x + box.width * 0.97, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    t.match(await page.locator('#sites-title').textContent(), /^High-water mark per site from /);
    t.equal(await page.locator('#brush').count(), 1, 'the range is drawn on the plot');
    const first = (await page.locator('#sites-body tr').first().textContent()) ?? '';
    t.match(first, /fill_cache \(pkg\/cache\.py:40\) — at 1(\.\d+)? s/, 'the cache first, at its high-water time');
    t.match(first, /4\.8 MiB/, 'with its high-water mark, not its end value');

    // A click (no drag) goes back to one time.
    await page.mouse.click(box.x + box.width * 0.5, box.y + box.height / 2);
    t.match(await page.locator('#sites-title').textContent(), /^Top sites at/);
    t.equal(await page.locator('#brush').count(), 0);

    // The tooltip: bytes, share and interval.
    const flame = (await page.locator('#flame').boundingBox())!;
    await page.mouse.move(flame.x + 40, flame.y + 9);
    t.match(await page.locator('#tip').textContent(), /live, [\d.]+% of the heap at .*\n95% interval: /);
    t.same(problems, [], 'no console errors');
    await page.close();
  });

  t.test('a --native profile: per-frame counts in the tooltip, python/native/mmap and RSS series, a thread filter', async (t) => {
    const dir = t.testdir();
    // What hp-record --native writes (header tag 13, THREAD and TRACE_INFO records): two threads,
    // three domains, RSS samples. Small allocations are sampled at p = 0.01, so their counts
    // are estimates with an interval; the rest are exact.
    const base = join(dir, 'native');
    await writeNativeReportProfile(base);
    const html = join(dir, 'native.html');
    const res = await run('hp-report', [base, '-o', html, '--at', 'end', '-q']);
    t.equal(res.code, 0, res.stderr);
    const { page, problems } = await open(html);
    const data = await page.evaluate(() => JSON.parse(document.getElementById('hp-data')!.textContent!));
    t.same(data.points[data.points.length - 1].domains, [700_000, 150_000, 8_000_000], 'each point split by domain');
    t.same(data.threads.map((th: { name: string }) => th.name).sort(), ['MainThread', 'loader']);

    // Series: the live heap, each domain, RSS; and the legend names just those.
    t.equal(await page.locator('#plot-legend').getAttribute('data-series'), 'live python native mmap rss');
    // The domains are stacked areas: each one's lower edge is the upper edge of the one below,
    // python's lower edge is zero, and the top of the stack is the live-heap line.
    const coords = (d: string): number[][] => [...d.matchAll(/[ML]([-\d.]+),([-\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    const live = coords((await page.locator('#live').getAttribute('d')) ?? '');
    const edges: { upper: number[][]; lower: number[][] }[] = [];
    for (const d of ['python', 'native', 'mmap']) {
      const path = (await page.locator(`#series-${d}`).getAttribute('d')) ?? '';
      t.match(path, /Z$/, `the ${d} area is closed`);
      const c = coords(path);
      t.equal(c.length, 2 * live.length, `the ${d} area has an upper and a lower edge`);
      edges.push({ upper: c.slice(0, live.length), lower: c.slice(live.length).reverse() });
    }
    const zeroY = Math.max(...edges[0]!.lower.map((p) => p[1]!));
    t.ok(edges[0]!.lower.every((p) => p[1] === zeroY), 'python stands on the axis');
    t.same(edges[1]!.lower, edges[0]!.upper, 'native stands on python');
    t.same(edges[2]!.lower, edges[1]!.upper, 'mmap stands on native');
    const last = live.length - 1;
    t.ok(Math.abs(edges[2]!.upper[last]![1]! - live[last]![1]!) <= 1, 'the top of the stack is the live heap');
    t.ok(((await page.locator('#rss').getAttribute('d')) ?? '').length > 50, 'the RSS line is drawn');
    t.match(await page.locator('#plot-legend').textContent(), /Python's allocator.*native \(malloc family\).*anonymous mmap.*process RSS/);

    // Tooltips: bytes, interval, count (with its interval when estimated) and share, per frame.
    const flame = (await page.locator('#flame').boundingBox())!;
    const tipAt = async (fx: number, row: number): Promise<string> => {
      await page.mouse.move(flame.x + flame.width * fx, flame.y + 18 * row + 9);
      return (await page.locator('#tip').textContent()) ?? '';
    };
    // Snapshot's estimator, for comparison: 50 sampled at p = 0.01 is about 5,000 allocations.
    const snap = JSON.parse((await run('hp-snapshot', [base, '--at', 'end', '--json'])).stdout.toString().split('\n')[0]!);
    const rootTip = await tipAt(0.5, 0);
    t.match(rootTip, new RegExp(`^all live bytes\\n8\\.4 MiB live, 100\\.0% of the heap at 4 s\\n95% interval: .*\\nallocations live: about ${snap.count.toLocaleString('en-US')} \\(95%: [\\d,]+ \\.\\. [\\d,]+\\)$`), 'the root: the total count, as hp-snapshot estimates it');
    // Level 1, widest first: run (threading.py:1) holds 8.2 of the 8.85 MB.
    t.match(await tipAt(0.3, 1), /^run \(threading\.py:1\)\n7\.8 MiB live, 92\.7% of the heap at 4 s\n95% interval: exact \(sampled at p = 1\)\nallocations live: 102 \(exact\)$/, 'a frame whose allocations were all recorded');
    t.match(await tipAt(0.3, 2), /^load \(loader\.py:5\)\n7\.6 MiB live, 90\.4% of the heap at 4 s\n95% interval: exact \(sampled at p = 1\)\nallocations live: 2 \(exact\)$/, 'an exact frame');
    t.match(await tipAt(0.97, 1), /^<module> \(app\.py:1\)\n634\.8 KiB live, 7\.3% of the heap at 4 s\n95% interval: [\d.]+ KiB \.\. [\d.]+ KiB\nallocations live: about 5,003 \(95%: [\d,]+ \.\. [\d,]+\)$/, 'a frame with sampled allocations below it: estimates with intervals');
    // The interval is the one hp-snapshot computes (a gamma, longer above than below), not the estimate ± a half-width.
    const [, lo, hi] = /95% interval: ([\d.]+) KiB \.\. ([\d.]+) KiB/.exec(await tipAt(0.97, 1)) ?? [];
    t.ok(634.8 - Number(lo) < Number(hi) - 634.8, `asymmetric: ${lo} .. ${hi} KiB about 634.8`);

    // The thread filter: shown for a profile with threads; restricts the flame graph and the table.
    t.equal(await page.isVisible('#thread'), true, 'the thread filter is shown');
    const rootBytes = (): Promise<number> => page.evaluate(() => Number(document.getElementById('flame')!.getAttribute('data-root-bytes')));
    const sites = async (): Promise<string> => (await page.locator('#sites-body').textContent()) ?? '';
    t.equal(await rootBytes(), 8_850_000, 'all threads');
    t.match(await sites(), /loader\.py.*app\.py|app\.py.*loader\.py/s);
    await page.selectOption('#thread', { label: 'loader (tid 101)' });
    t.equal(await rootBytes(), 8_200_000, "the loader thread's heap");
    t.match(await page.locator('#flame-title').textContent(), /thread loader \(tid 101\): 7\.8 MiB/);
    t.notMatch(await sites(), /app\.py|cfunc|malloc/, "the table lists the loader's sites only");
    t.match(await sites(), /load \(loader\.py:5\)/);
    t.match(await tipAt(0.5, 0), /^all live bytes of loader \(tid 101\)\n7\.8 MiB live, 100\.0% of the thread's heap/);
    await page.selectOption('#thread', { label: 'MainThread (tid 100)' });
    t.equal(await rootBytes(), 650_000, "the main thread's heap");
    t.notMatch(await sites(), /loader\.py/);
    t.match(await sites(), /build \(app\.py:10\)/);
    t.match(await tipAt(0.5, 1), /^<module> \(app\.py:1\)\n634\.8 KiB live, 100\.0% of the thread's heap/);
    // A drag over the whole run, within the thread: its high-water marks.
    const box = (await page.locator('#plot').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.08, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.97, box.y + box.height / 2, { steps: 8 });
    await page.mouse.up();
    t.match(await page.locator('#sites-title').textContent(), /^High-water mark per site .*thread MainThread/);
    t.notMatch(await sites(), /loader\.py/);
    await page.selectOption('#thread', { label: 'all threads' });
    t.equal(await rootBytes(), 8_850_000, 'all threads again');
    t.same(problems, [], 'no console errors');
    await page.close();
  });

  const py = supportedPythons().find((p) => p.minor >= 11) ?? supportedPythons()[0];
  const noRecording = !existsSync(NATIVE_LIB) ? 'the native hook is not built' : !py ? 'no CPython 3.9-3.13 installed' : false;
  t.test('a real hp-record --native recording: domain series and a thread menu that splits the threads', { skip: noRecording }, async (t) => {
    const dir = t.testdir();
    const base = join(dir, 'threads');
    const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1' };
    delete env.HEAPPROF_NATIVE_LIB;
    delete env.PYTHONPATH;
    const rec = spawnSync(process.execPath, [join(ROOT_DIR, 'bin', 'hp-record.js'), '--python', py!.exe, '-o', base, '-q', '--native', '--', join(NATIVE_FIXTURES, 'report_threads.py')], { env, encoding: 'utf8', timeout: 120_000 });
    t.equal(rec.status, 0, rec.stderr);
    t.match(rec.stdout, /^done 20 100000/);
    const html = join(dir, 'threads.html');
    const res = await run('hp-report', [base, '-o', html, '--at', 'end', '-q']);
    t.equal(res.code, 0, res.stderr);
    const { page, problems } = await open(html);
    t.match(await page.locator('#plot-legend').getAttribute('data-series'), /^live python native( mmap)? rss$/, 'python and native series, and RSS');
    t.equal(await page.isVisible('#thread'), true, 'a thread menu');
    const options = await page.locator('#thread option').count();
    t.ok(options >= 3, `all threads and at least two threads (${options - 1})`);
    const rootBytes = (): Promise<number> => page.evaluate(() => Number(document.getElementById('flame')!.getAttribute('data-root-bytes')));
    const all = await rootBytes();
    // The thread whose flame graph has the loader's malloc line holds about 20 MB, and not the
    // main thread's strings; the main thread has the strings and not the mallocs.
    const matches = async (text: string): Promise<number> => {
      await page.fill('#search', text);
      return page.evaluate(() => Number(document.getElementById('flame')!.getAttribute('data-matches')));
    };
    const LOADER = 'report_threads.py:16';
    const STRINGS = 'report_threads.py:22';
    t.ok((await matches(LOADER)) > 0 && (await matches(STRINGS)) > 0, 'all threads: both lines');
    let loaders = 0;
    let sum = 0;
    for (let k = 0; k < options - 1; k++) {
      await page.selectOption('#thread', String(k));
      const bytes = await rootBytes();
      sum += bytes;
      if ((await matches(LOADER)) > 0) {
        loaders++;
        t.ok(bytes > 19e6 && bytes < 21.5e6, `the loader thread holds its 20 x 1 MB (${bytes})`);
        t.equal(await matches(STRINGS), 0, "and not the main thread's strings");
      } else if ((await matches(STRINGS)) > 0) {
        t.ok(bytes > 5e6, `the main thread holds the strings (${bytes})`);
      }
    }
    t.equal(loaders, 1, "one thread's flame graph has the loader's malloc line");
    t.ok(Math.abs(sum - all) <= 0.01 * all, `the threads' heaps add up to the whole (${sum} vs ${all})`);
    t.same(problems, []);
    await page.close();
  });

  t.test('--at chooses the moment shown first, exactly', async (t) => {
    const dir = t.testdir();
    const html = join(dir, 'at.html');
    const res = await run('hp-report', [join(FIXTURES, 'app'), '-o', html, '--at', '4', '-q']);
    t.equal(res.code, 0, res.stderr);
    const { page, problems } = await open(html);
    const s = await state(page);
    t.match(s.title, /^Chosen: live heap at 4 s: 53\.6 MiB/, 'the state at 4 s (the spike half built)');
    t.match(await page.locator('#sites-body tr').first().textContent(), /parse \(loader\.py:22\)/);
    t.same(problems, []);
    await page.close();
  });

  t.test('a chosen moment reads as its --at, to the microsecond; a tiny share as <0.1%', async (t) => {
    const dir = t.testdir();
    const html = join(dir, 'at.html');
    const res = await run('hp-report', [join(FIXTURES, 'app'), '-o', html, '--at', '4.0005', '-q']);
    t.equal(res.code, 0, res.stderr);
    const { page, problems } = await open(html);
    t.match((await state(page)).title, /^Chosen: live heap at 4\.0005 s: /, 'not rounded to the millisecond');
    t.match(await page.locator('#sites-title').textContent(), /^Top sites at 4\.0005 s/);
    const shares = await page.locator('#sites-body tr td:last-child').allTextContents();
    t.notOk(shares.some((x) => /^\s*0\.0%$/.test(x)), `no live site reads 0.0% (${shares.join(' ')})`);
    t.same(problems, []);
    await page.close();
  });

  t.test('10^5 traces: the report is built fast, stays small, and the page responds', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'hp-big-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const base = join(dir, 'big');
    await writeProfile(base, bigSpec(100_000, 300_000));
    const html = join(dir, 'big.html');
    const started = Date.now();
    const res = await run('hp-report', [base, '-o', html, '-q']);
    const buildMs = Date.now() - started;
    t.equal(res.code, 0, res.stderr);
    const size = statSync(html).size;
    t.comment(`hp-report on 10^5 traces / 3*10^5 events: ${buildMs} ms, ${(size / 1024).toFixed(0)} KiB of HTML`);
    t.ok(size < 4 * 1024 * 1024, 'under 4 MiB of HTML');
    const loadStart = Date.now();
    const { page, problems } = await open(html);
    const first = await state(page);
    t.comment(`page load and first draw: ${Date.now() - loadStart} ms`);
    t.same(problems, []);
    t.ok(first.inkPixels > 10000, 'flame graph drawn');
    const box = (await page.locator('#plot').boundingBox())!;
    const clickStart = Date.now();
    await page.mouse.click(box.x + box.width * 0.3, box.y + box.height / 2);
    const second = await state(page);
    const clickMs = Date.now() - clickStart;
    t.comment(`redraw after a click: ${clickMs} ms`);
    t.not(second.hash, first.hash, 'the click redrew the flame graph');
    t.ok(clickMs < 5000, 'a click redraws within 5 s even on a loaded machine');
    await page.close();
  });
}
