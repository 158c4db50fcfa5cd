/** Reconnection: the daemon stops, the status bar says so, the daemon comes back, so do the items. */

import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { StatusController } from '../src/controller';
import { Timer } from '../src/seam';
import { Sandbox, waitFor } from './daemon';
import { FakeBar, FakeUi, RecordingTimer } from './fakes';

const UNREACHABLE = '$(debug-disconnect) SimpleAide: daemon unreachable';
const sandboxes: Sandbox[] = [];
const controllers: StatusController[] = [];

after(() => {
  controllers.forEach((controller) => controller.dispose());
  sandboxes.forEach((sandbox) => sandbox.cleanUp());
});

function setUp(timer: Timer): { sandbox: Sandbox; bar: FakeBar; ui: FakeUi; controller: StatusController } {
  const sandbox = new Sandbox();
  sandboxes.push(sandbox);
  const bar = new FakeBar();
  const ui = new FakeUi();
  const controller = new StatusController({ socketPath: sandbox.socketPath, statusBar: bar, ui, timer });
  controllers.push(controller);
  return { sandbox, bar, ui, controller };
}

test('a restarted daemon: the unreachable item, then the five items again', { timeout: 30000 }, async () => {
  const timer = new RecordingTimer();
  const { sandbox, bar, ui, controller } = setUp(timer);
  let daemon = await sandbox.start();
  controller.start();
  await waitFor('the five items', () => bar.items.length === 5);
  assert.deepEqual(timer.delays, []);

  await daemon.stop();
  await waitFor('the unreachable item', () => bar.texts[0] === UNREACHABLE, 3000);
  const [item] = bar.items;
  assert.equal(bar.items.length, 1);
  assert.equal(item.command, 'simpleaide.reconnect');
  assert.equal(item.level, 'bad');
  assert.ok(item.tooltip.startsWith(`No daemon answers on ${sandbox.socketPath} (`), item.tooltip);
  assert.ok(item.tooltip.endsWith('). Start it: simpleaide daemon start — retrying…'), item.tooltip);
  assert.equal(controller.connected, false);
  // The retries back off: 250 ms, then 500 ms, ...
  await waitFor('two retries', () => timer.delays.length >= 2, 3000);
  assert.deepEqual(timer.delays.slice(0, 2), [250, 500]);
  assert.ok(ui.logs.some((line) => line.startsWith(`daemon unreachable on ${sandbox.socketPath}: `)));

  const started = Date.now();
  daemon = await sandbox.start();
  try {
    // The longest wait between tries is 5 s: the items are back within that, plus a margin.
    await waitFor('the five items again', () => bar.items.length === 5 && controller.connected, 8000);
    assert.ok(Date.now() - started < 8000);
    assert.equal(bar.texts[0], 'DEV 🟢');
    const tries = timer.delays.length;
    assert.deepEqual(timer.delays, [250, 500, 1000, 2000, 4000, 5000, 5000].slice(0, tries));

    // Subscribed again: the backoff starts over at 250 ms the next time.
    await daemon.stop();
    await waitFor('the unreachable item again', () => bar.texts[0] === UNREACHABLE, 3000);
    assert.equal(timer.delays[tries], 250);
  } finally {
    await daemon.stop();
  }
});

test('the reconnect command tries again at once', { timeout: 30000 }, async () => {
  // Timers that never fire: only the command can bring the items back.
  const delays: number[] = [];
  const { sandbox, bar, controller } = setUp({
    setTimeout: (_callback, ms) => delays.push(ms),
    clearTimeout: () => undefined,
  });
  controller.start();
  await waitFor('the unreachable item', () => bar.texts[0] === UNREACHABLE);
  assert.match(bar.items[0].tooltip, /\(no socket there\)/);
  assert.deepEqual(delays, [250]);

  const daemon = await sandbox.start();
  try {
    await controller.reconnect();
    assert.equal(controller.connected, true);
    assert.equal(bar.items.length, 5);
    assert.deepEqual(delays, [250]);
  } finally {
    await daemon.stop();
  }
});
