/**
 * Reconnection: the daemon stops, or stops answering, the status bar says so, the daemon comes
 * back, so do the items. Also what a daemon that accepts connections but never answers does to
 * the commands, and the backoff against a daemon that crashes right after answering.
 */

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { after, test } from 'node:test';
import { createMessageConnection, SocketMessageReader, SocketMessageWriter } from 'vscode-jsonrpc/node';

import { ControllerOptions, StatusController } from '../src/controller';
import { StatusDocument, StatusSnapshot } from '../src/protocol';
import { Timer } from '../src/seam';
import { Sandbox, waitFor } from './daemon';
import { FakeBar, FakeUi, ManualTimer, RecordingTimer } from './fakes';

const UNREACHABLE = '$(debug-disconnect) SimpleAide: daemon unreachable';
const sandboxes: Sandbox[] = [];
const controllers: StatusController[] = [];
const servers: Array<{ server: net.Server; sockets: Set<net.Socket> }> = [];

after(() => {
  controllers.forEach((controller) => controller.dispose());
  servers.forEach(({ server, sockets }) => {
    sockets.forEach((socket) => socket.destroy());
    server.close();
  });
  sandboxes.forEach((sandbox) => sandbox.cleanUp());
});

function setUp(
  timer: Timer,
  options: Partial<ControllerOptions> = {},
): { sandbox: Sandbox; bar: FakeBar; ui: FakeUi; controller: StatusController } {
  const sandbox = new Sandbox();
  sandboxes.push(sandbox);
  const bar = new FakeBar();
  const ui = new FakeUi();
  const controller = new StatusController({ socketPath: sandbox.socketPath, statusBar: bar, ui, timer, ...options });
  controllers.push(controller);
  return { sandbox, bar, ui, controller };
}

/** A server on `socketPath` that calls `onSocket` for each connection, closed after the tests. */
async function serve(socketPath: string, onSocket: (socket: net.Socket) => void): Promise<Set<net.Socket>> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  servers.push({ server, sockets });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return sockets;
}

/** Resolves with how long `promise` took; fails if it takes longer than `boundMs`. */
async function settlesWithin(what: string, promise: Promise<unknown>, boundMs: number): Promise<number> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${boundMs} ms`)), boundMs);
  });
  try {
    await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
  return Date.now() - started;
}

test('a restarted daemon: the unreachable item, then the five items again', { timeout: 30000 }, async () => {
  const timer = new RecordingTimer();
  const { sandbox, bar, ui, controller } = setUp(timer, { stableAfterMs: 200 });
  let daemon = await sandbox.start();
  controller.start();
  await waitFor('the five items', () => bar.items.length === 5);
  assert.deepEqual(timer.delays(), []);

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
  await waitFor('two retries', () => timer.delays().length >= 2, 3000);
  assert.deepEqual(timer.delays().slice(0, 2), [250, 500]);
  assert.ok(ui.logs.some((line) => line.startsWith(`daemon unreachable on ${sandbox.socketPath}: `)));

  const started = Date.now();
  daemon = await sandbox.start();
  try {
    // The longest wait between tries is 5 s: the items are back within that, plus a margin.
    await waitFor('the five items again', () => bar.items.length === 5 && controller.connected, 8000);
    assert.ok(Date.now() - started < 8000);
    assert.equal(bar.texts[0], 'DEV 🟢');
    const tries = timer.delays().length;
    assert.deepEqual(timer.delays(), [250, 500, 1000, 2000, 4000, 5000, 5000].slice(0, tries));

    // Up for 200 ms (stableAfterMs): the backoff starts over at 250 ms the next time.
    const stable = timer.asked.filter((t) => t.purpose === 'stable').pop();
    await waitFor('the connection to count as stable', () => stable?.fired);
    await daemon.stop();
    await waitFor('the unreachable item again', () => bar.texts[0] === UNREACHABLE, 3000);
    assert.equal(timer.delays()[tries], 250);
  } finally {
    await daemon.stop();
  }
});

test('the reconnect command tries again at once', { timeout: 30000 }, async () => {
  // Timers that never fire: only the command can bring the items back.
  const timer = new ManualTimer();
  const { sandbox, bar, controller } = setUp(timer);
  controller.start();
  await waitFor('the unreachable item', () => bar.texts[0] === UNREACHABLE);
  assert.match(bar.items[0].tooltip, /\(no socket there\)/);
  assert.deepEqual(timer.delays(), [250]);

  const daemon = await sandbox.start();
  try {
    await controller.reconnect();
    assert.equal(controller.connected, true);
    assert.equal(bar.items.length, 5);
    assert.deepEqual(timer.delays(), [250]);
    assert.deepEqual(timer.pending.sort(), ['ping', 'stable']);
  } finally {
    controller.dispose();
    assert.deepEqual(timer.pending, [], 'dispose clears the ping and the stable timers');
    await daemon.stop();
  }
});

test('a stopped daemon (SIGSTOP): unreachable once a ping goes unanswered, the items again after SIGCONT', { timeout: 30000 }, async () => {
  const timer = new RecordingTimer();
  const { sandbox, bar, ui, controller } = setUp(timer, {
    pingIntervalMs: 100,
    requestTimeoutMs: 400,
    maxDelayMs: 500,
  });
  const daemon = await sandbox.start();
  try {
    controller.start();
    await waitFor('the five items', () => controller.connected);
    await waitFor('a ping answered', () => timer.delays('ping').length >= 2);
    daemon.pause();
    // A ping within 100 ms, unanswered for 400 ms: the unreachable item well within 2 s.
    const paused = Date.now();
    await waitFor('the unreachable item', () => bar.texts[0] === UNREACHABLE, 2000);
    assert.ok(Date.now() - paused < 2000);
    assert.match(bar.items[0].tooltip, /\(no answer within 0\.4 s\)/);
    const logged = `daemon unreachable on ${sandbox.socketPath}: no answer within 0.4 s`;
    assert.ok(ui.logs.includes(logged), ui.logs.join('\n'));
    // Still stopped: the retries connect (the kernel accepts), get no answer, and back off.
    await waitFor('two retries', () => timer.delays().length >= 2, 3000);
    assert.equal(controller.connected, false);
    assert.equal(bar.texts[0], UNREACHABLE);

    daemon.resume();
    await waitFor('the five items again', () => controller.connected && bar.items.length === 5, 5000);
    assert.equal(bar.texts[0], 'DEV 🟢');
  } finally {
    await daemon.stop();
  }
});

test('a daemon that accepts and never answers: unreachable, and commands fail rather than hang', { timeout: 20000 }, async () => {
  const timer = new ManualTimer(); // no retries but the ones the test fires
  const { sandbox, bar, ui, controller } = setUp(timer, { requestTimeoutMs: 300 });
  let requests = 0;
  await serve(sandbox.socketPath, (socket) => socket.on('data', () => requests++));

  const started = Date.now();
  controller.start();
  // While the subscription waits for its answer, the commands ask too: each settles.
  await waitFor('the subscribe request', () => requests > 0, 2000);
  const commands = [controller.showRuns(), controller.toggleVault(), controller.showLlm(), controller.showStatus()];
  await settlesWithin('the commands', Promise.all(commands), 2000);
  await waitFor('the unreachable item', () => bar.texts[0] === UNREACHABLE, 2000);
  assert.ok(Date.now() - started < 2000, `unreachable after ${Date.now() - started} ms`);
  assert.match(bar.items[0].tooltip, /\(no answer within 0\.3 s\)/);
  assert.deepEqual(timer.delays(), [250]);

  const error = (reason: string): string =>
    `No daemon answers on ${sandbox.socketPath} (${reason}). Start it with: simpleaide daemon start`;
  const noAnswer = error('no answer within 0.3 s');
  assert.deepEqual(ui.errors.sort(), [
    noAnswer,
    noAnswer,
    noAnswer,
    error('not connected yet'), // showStatus: no document yet
  ]);

  // Unreachable now: the commands fail at once, the reconnect command within the timeout.
  ui.errors.length = 0;
  await settlesWithin('the commands', Promise.all([controller.showRuns(), controller.showStatus()]), 500);
  assert.deepEqual(ui.errors, [noAnswer, noAnswer]);
  await settlesWithin('reconnect', controller.reconnect(), 2000);
  assert.equal(bar.texts[0], UNREACHABLE);
  assert.deepEqual(timer.delays(), [250, 250]);
  controller.dispose();
  assert.deepEqual(timer.pending, []);
});

test('the reconnect command drops a connection the daemon never answered', { timeout: 20000 }, async () => {
  // A long request timeout: only the command can end the wait.
  const { sandbox, bar, controller } = setUp(new ManualTimer(), { requestTimeoutMs: 60000 });
  let requests = 0;
  await serve(sandbox.socketPath, (socket) => socket.on('data', () => requests++));
  controller.start();
  await waitFor('the subscribe request', () => requests > 0, 2000);
  // The silent server goes (its connection stays open); a real daemon takes the socket.
  servers[servers.length - 1].server.close();
  fs.rmSync(sandbox.socketPath, { force: true });
  const daemon = await sandbox.start();
  try {
    assert.equal(controller.connected, false);
    await settlesWithin('reconnect', controller.reconnect(), 3000);
    assert.equal(controller.connected, true);
    assert.equal(bar.texts[0], 'DEV 🟢');
  } finally {
    controller.dispose();
    await daemon.stop();
  }
});

test('the backoff starts over only once a connection has stayed up', { timeout: 20000 }, async () => {
  const timer = new ManualTimer();
  const { sandbox, bar, controller } = setUp(timer);
  // A stand-in daemon that answers the subscription, then crashes unless told otherwise.
  const snapshot: StatusSnapshot = { seq: 1, status: { chips: [], warnings: [] } as unknown as StatusDocument };
  let crash = true;
  const sockets = await serve(sandbox.socketPath, (socket) => {
    const rpc = createMessageConnection(new SocketMessageReader(socket), new SocketMessageWriter(socket));
    rpc.onRequest('status.subscribe', () => {
      if (crash) {
        setTimeout(() => socket.end(), 10); // after the answer has gone out
      }
      return snapshot;
    });
    socket.on('close', () => rpc.dispose());
    rpc.listen();
  });

  controller.start();
  // Each connection is answered, then lost before it counts as stable: the delays still grow.
  for (const delay of [250, 500, 1000, 2000]) {
    await waitFor(`a retry in ${delay} ms`, () => timer.pendingDelay('retry') === delay, 3000);
    timer.fire('retry');
  }
  await waitFor('a retry in 4000 ms', () => timer.pendingDelay('retry') === 4000, 3000);
  assert.equal(timer.delays('stable').length, 5, 'five subscriptions answered');
  assert.deepEqual(timer.delays(), [250, 500, 1000, 2000, 4000]);

  // A connection that stays up until its stable timer fires: the next loss retries in 250 ms.
  crash = false;
  timer.fire('retry');
  await waitFor('connected', () => controller.connected, 3000);
  assert.equal(bar.items.length, 5);
  timer.fire('stable');
  sockets.forEach((socket) => socket.destroy());
  await waitFor('a retry in 250 ms', () => timer.pendingDelay('retry') === 250, 3000);
  assert.deepEqual(timer.pending, ['retry'], 'no ping or stable timer left for a lost connection');
});
