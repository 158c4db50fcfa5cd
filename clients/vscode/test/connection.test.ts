/** `DaemonConnection` against a real daemon: framing, calls, errors, the subscription. */

import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, test } from 'node:test';

import { DaemonConnection, DaemonError, NotConnectedError } from '../src/connection';
import { API_VERSION, DaemonInfo, ErrorCode, StatusDocument } from '../src/protocol';
import { Daemon, Sandbox, waitFor } from './daemon';

let sandbox: Sandbox;
let daemon: Daemon;

before(async () => {
  sandbox = new Sandbox();
  daemon = await sandbox.start();
});

after(async () => {
  await daemon?.stop();
  sandbox?.cleanUp();
});

test('requests go out with Content-Length framing and get answers', { timeout: 10000 }, async () => {
  const socket = net.createConnection(sandbox.socketPath);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const written: string[] = [];
  const write = socket.write;
  socket.write = function (this: net.Socket, chunk: string | Uint8Array, ...rest: unknown[]): boolean {
    written.push(Buffer.from(chunk).toString('utf-8'));
    return Reflect.apply(write, this, [chunk, ...rest]) as boolean;
  } as typeof socket.write;
  const connection = DaemonConnection.over(socket, sandbox.socketPath);
  try {
    const info = await connection.call<DaemonInfo>('daemon.info');
    assert.equal(info.apiVersion, API_VERSION);
    assert.equal(info.socket, sandbox.socketPath);
    const sent = written.join('');
    assert.match(sent, /^Content-Length: \d+\r\n/);
    assert.match(sent, /"method":"daemon\.info"/);
  } finally {
    connection.dispose();
  }
});

test('a JSON-RPC error becomes a DaemonError with the code and the message', { timeout: 10000 }, async () => {
  const connection = await DaemonConnection.open(sandbox.socketPath);
  try {
    await assert.rejects(connection.call('runs.get', { runId: '20260101T000000000Z-00000000' }), (err) => {
      assert.ok(err instanceof DaemonError);
      assert.equal(err.code, ErrorCode.NotFound);
      assert.match(err.message, /20260101T000000000Z-00000000/);
      return true;
    });
    await assert.rejects(connection.call('runs.list', { limit: 0 }), { code: ErrorCode.InvalidParams });
  } finally {
    connection.dispose();
  }
});

test('open() says why when no daemon answers', { timeout: 10000 }, async () => {
  const missing = `${sandbox.root}/run/missing.sock`;
  await assert.rejects(DaemonConnection.open(missing), (err) => {
    assert.ok(err instanceof NotConnectedError);
    assert.equal(err.reason, 'no socket there');
    assert.equal(err.message, `no daemon answers on ${missing} (no socket there)`);
    return true;
  });
  // A call on a disposed connection rejects the same way rather than throwing.
  const connection = await DaemonConnection.open(sandbox.socketPath);
  connection.dispose();
  await assert.rejects(connection.call('daemon.ping'), NotConnectedError);
});

test('subscribe() gives the document now, then each change', { timeout: 10000 }, async () => {
  const connection = await DaemonConnection.open(sandbox.socketPath);
  const other = await DaemonConnection.open(sandbox.socketPath);
  try {
    const seen: StatusDocument[] = [];
    const snapshot = await connection.subscribe((doc) => seen.push(doc));
    assert.deepEqual(seen, [snapshot.status]);
    assert.deepEqual(
      snapshot.status.chips.map((c) => c.name),
      ['env', 'vault', 'db', 'llm', 'runs'],
    );
    const before = snapshot.status.runs.total;
    await other.call('runs.create', { workspace: sandbox.workspace, title: 'subscribed' });
    await waitFor('a status.changed with the new run', () => seen.some((doc) => doc.runs.total === before + 1));
  } finally {
    connection.dispose();
    other.dispose();
  }
});

test('a request left unanswered rejects after the timeout and closes the connection', { timeout: 10000 }, async () => {
  // Accepts, reads, never answers: a stopped daemon, or a socket-activated unit failing to start.
  const socketPath = `${sandbox.root}/run/silent.sock`;
  const accepted: net.Socket[] = [];
  const server = net.createServer((socket) => accepted.push(socket));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const connection = await DaemonConnection.open(socketPath, 2000, 200);
  try {
    const reasons: string[] = [];
    connection.onClose((reason) => reasons.push(reason));
    const started = Date.now();
    const [first, second] = await Promise.allSettled([connection.call('daemon.ping'), connection.call('daemon.info')]);
    assert.ok(Date.now() - started < 1000, `settled after ${Date.now() - started} ms`);
    for (const outcome of [first, second]) {
      assert.equal(outcome.status, 'rejected');
      assert.ok(outcome.reason instanceof NotConnectedError);
      assert.equal(outcome.reason.reason, 'no answer within 0.2 s');
    }
    assert.deepEqual(reasons, ['no answer within 0.2 s']); // once, for both
    assert.equal(connection.isOpen, false);
    await assert.rejects(connection.call('daemon.ping'), { reason: 'no answer within 0.2 s' });
  } finally {
    connection.dispose();
    accepted.forEach((socket) => socket.destroy());
    server.close();
  }
});

test('a request written as the connection closes rejects with NotConnectedError, nothing unhandled', { timeout: 10000 }, async () => {
  const connection = await DaemonConnection.open(sandbox.socketPath);
  const request = connection.call('daemon.ping'); // still being written
  connection.dispose();
  await assert.rejects(request, NotConnectedError);
  await new Promise((resolve) => setTimeout(resolve, 50)); // room for an unhandled rejection to surface
});
