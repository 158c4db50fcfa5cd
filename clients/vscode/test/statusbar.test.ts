/** Pure tests: the mapping from documents to items and lines, the backoff, the socket rule. */

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';

import { Backoff } from '../src/controller';
import { defaultSocketPath, LlmSection, resolveSocketPath, RunRow, StatusDocument } from '../src/protocol';
import { Command, itemsFor, llmTable, runPickItems, unreachableItems } from '../src/statusbar';

function document(overrides: Partial<StatusDocument> = {}): StatusDocument {
  return {
    env: 'DEV',
    generatedAt: '2026-11-24T10:15:00.123Z',
    runs: { active: 1, busy: true, pending: 0, total: 3, last: null },
    vault: { state: 'locked', autoLockRemainingMs: null },
    db: { connected: true, type: 'sqlite', env: 'DEV', readOnly: false, latencyMs: 0.4, error: null, checkedAt: null },
    llm: { online: 0, total: 0, backends: [] },
    api: { enabled: false, url: null, port: null, socket: '/run/d.sock' },
    warnings: [],
    chips: [
      { name: 'env', text: 'DEV 🟢', level: 'ok', tooltip: 'DEV profile', href: '#/env' },
      { name: 'vault', text: 'Vault 🔒', level: 'info', tooltip: 'Vault locked', href: '#/vault' },
      { name: 'db', text: 'DB ✅', level: 'ok', tooltip: 'DEV database: read-write (sqlite, 0.4 ms)', href: '#/db' },
      { name: 'llm', text: 'LLM –', level: 'off', tooltip: 'LLM: no backends configured', href: '#/llm' },
      { name: 'runs', text: 'Run ⏳ 1', level: 'warn', tooltip: '1 run active', href: '#/runs' },
    ],
    ...overrides,
  };
}

test('itemsFor: the five chips in order, with their words, levels and commands', () => {
  const doc = document();
  // Given out of order: the items still come env, vault, db, llm, runs.
  const items = itemsFor({ ...doc, chips: [...doc.chips].reverse() });
  assert.deepEqual(
    items.map((i) => [i.id, i.text, i.tooltip, i.level, i.command]),
    [
      ['env', 'DEV 🟢', 'DEV profile', 'ok', 'simpleaide.showStatus'],
      ['vault', 'Vault 🔒', 'Vault locked', 'info', 'simpleaide.toggleVault'],
      ['db', 'DB ✅', 'DEV database: read-write (sqlite, 0.4 ms)', 'ok', 'simpleaide.showStatus'],
      ['llm', 'LLM –', 'LLM: no backends configured', 'off', 'simpleaide.showLlm'],
      ['runs', 'Run ⏳ 1', '1 run active', 'warn', 'simpleaide.showRuns'],
    ],
  );
});

test('itemsFor: warnings add a sixth item, "⚠ N", listing them; the chips stay as sent', () => {
  const doc = document({ warnings: ['config reload failed', 'watcher overflowed'] });
  const items = itemsFor(doc);
  assert.equal(items.length, 6);
  assert.deepEqual(items[5], {
    id: 'warnings',
    text: '⚠ 2', // the CLI's chip (clients/python/simpleaide/chips.py), word for word
    tooltip: 'Warning: config reload failed\nWarning: watcher overflowed',
    command: 'simpleaide.showStatus',
    level: 'warn',
  });
  assert.deepEqual(
    items.slice(0, 5).map((i) => [i.text, i.tooltip]),
    doc.chips.map((c) => [c.text, c.tooltip]),
  );
  assert.equal(items[0].tooltip, 'DEV profile'); // the warnings are no longer under Env
  assert.equal(itemsFor(document({ warnings: [] })).length, 5);
});

test('itemsFor: a chip missing from the document gives "<Name> ?", not a crash', () => {
  const doc = document();
  const items = itemsFor({ ...doc, chips: doc.chips.filter((c) => c.name !== 'db' && c.name !== 'runs') });
  assert.deepEqual(
    items.map((i) => i.text),
    ['DEV 🟢', 'Vault 🔒', 'DB ?', 'LLM –', 'Runs ?'],
  );
  assert.equal(items[2].command, 'simpleaide.showStatus');
  assert.equal(items[4].level, 'off');
  assert.equal(itemsFor({ ...doc, chips: [] }).length, 5);
});

test('unreachableItems: one item saying where and why; a click reconnects', () => {
  assert.deepEqual(unreachableItems('/run/user/1000/simpleaide/daemon.sock', 'no socket there'), [
    {
      id: 'unreachable',
      text: '$(debug-disconnect) SimpleAide: daemon unreachable',
      tooltip:
        'No daemon answers on /run/user/1000/simpleaide/daemon.sock (no socket there). ' +
        'Start it: simpleaide daemon start — retrying…',
      command: 'simpleaide.reconnect',
      level: 'bad',
    },
  ]);
});

test('llmTable: aligned columns per backend, then the count', () => {
  const llm: LlmSection = {
    online: 1,
    total: 2,
    backends: [
      {
        name: 'local',
        kind: 'ollama',
        url: 'http://127.0.0.1:11434',
        model: 'llama3',
        online: true,
        latencyMs: 12.5,
        models: ['llama3'],
        error: null,
        checkedAt: null,
      },
      {
        name: 'cloud-backend',
        kind: 'openai',
        url: 'https://api.example',
        model: null,
        online: false,
        latencyMs: null,
        models: [],
        error: 'connection refused',
        checkedAt: null,
      },
    ],
  };
  assert.deepEqual(llmTable(llm), [
    'NAME           KIND    STATE   LATENCY  MODEL   ERROR',
    'local          ollama  online  12.5 ms  llama3',
    'cloud-backend  openai  OFF     –        –       connection refused',
    '1/2 online',
  ]);
});

test('runPickItems: the chip mark and the title, the id, the times', () => {
  const row = (status: RunRow['status'], title: string | null, completedAt: string | null): RunRow => ({
    id: `20261124T101500123Z-0000000${status.length}`,
    workspace: '/ws',
    status,
    title,
    startedAt: '2026-11-24T10:15:00.123Z',
    completedAt,
    updatedAt: null,
    stepCount: 2,
    errorMessage: status === 'corrupt' ? 'bad JSON' : null,
  });
  const items = runPickItems([
    row('running', 'Add  the\nlogin page', null),
    row('failed', null, '2026-11-24T10:20:00.000Z'),
    row('corrupt', null, null),
  ]);
  assert.deepEqual(
    items.map((i) => i.label),
    ['⏳ Add the login page', '✗ (untitled)', '? (corrupt: bad JSON)'],
  );
  assert.equal(items[0].description, items[0].value);
  assert.match(items[0].detail ?? '', /^running · 2 steps · started \d{4}-\d\d-\d\d \d\d:\d\d$/);
  assert.match(items[1].detail ?? '', /^failed · 2 steps · started .+ · ended \d{4}-\d\d-\d\d \d\d:\d\d$/);
});

test('Backoff: 250 ms doubling to a 5 s cap, and back to 250 ms after a reset', () => {
  const backoff = new Backoff();
  const delays = Array.from({ length: 7 }, () => backoff.next());
  assert.deepEqual(delays, [250, 500, 1000, 2000, 4000, 5000, 5000]);
  backoff.reset();
  assert.equal(backoff.next(), 250);
});

test('the socket: the setting, else $SIMPLEAIDE_SOCKET, else the default rule of the CLI', () => {
  const uid = os.userInfo().uid;
  assert.equal(defaultSocketPath({}), `/tmp/simpleaide-${uid}/daemon.sock`);
  assert.equal(defaultSocketPath({ XDG_RUNTIME_DIR: 'relative' }), `/tmp/simpleaide-${uid}/daemon.sock`);
  assert.equal(defaultSocketPath({ XDG_RUNTIME_DIR: '/run/user/7' }), '/run/user/7/simpleaide/daemon.sock');
  const env = { XDG_RUNTIME_DIR: '/run/user/7', SIMPLEAIDE_SOCKET: '/tmp/x.sock' };
  assert.equal(resolveSocketPath('', env), '/tmp/x.sock');
  assert.equal(resolveSocketPath('  ', { XDG_RUNTIME_DIR: '/run/user/7' }), '/run/user/7/simpleaide/daemon.sock');
  assert.equal(resolveSocketPath('~/d.sock', env), `${os.homedir()}/d.sock`);
});

test('the socket: a relative path or "~" is against the home folder, not the working folder', () => {
  const home = '/home/someone';
  assert.equal(resolveSocketPath('/run/d.sock', {}, home), '/run/d.sock');
  assert.equal(resolveSocketPath('run/d.sock', {}, home), '/home/someone/run/d.sock');
  assert.equal(resolveSocketPath('./d.sock', {}, home), '/home/someone/d.sock');
  assert.equal(resolveSocketPath(' ~/run/../d.sock ', {}, home), '/home/someone/d.sock');
  assert.equal(resolveSocketPath('~', {}, home), home);
  assert.equal(resolveSocketPath('', { SIMPLEAIDE_SOCKET: 'd.sock' }, home), '/home/someone/d.sock');
  assert.equal(resolveSocketPath('d.sock'), path.join(os.homedir(), 'd.sock')); // the user's home by default
});

test('package.json contributes the commands the items run, and points at the built extension', () => {
  const root = path.resolve(__dirname, '..', '..');
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf-8')) as {
    main: string;
    contributes: { commands: Array<{ command: string }> };
  };
  assert.deepEqual(
    manifest.contributes.commands.map((c) => c.command).sort(),
    Object.values(Command).sort(),
  );
  assert.ok(fs.existsSync(path.join(root, manifest.main)), `${manifest.main} is built`);
});
