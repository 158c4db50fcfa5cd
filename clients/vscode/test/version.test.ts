/**
 * A daemon that speaks another API version. The real daemon cannot be made to, so a stand-in
 * serves the two methods the controller calls on connecting, from a real status document.
 */

import assert from 'node:assert/strict';
import * as net from 'node:net';
import { test } from 'node:test';
import { createMessageConnection, SocketMessageReader, SocketMessageWriter } from 'vscode-jsonrpc/node';

import { DaemonConnection } from '../src/connection';
import { StatusController } from '../src/controller';
import { DaemonInfo, StatusSnapshot } from '../src/protocol';
import { Sandbox, waitFor } from './daemon';
import { FakeBar, FakeUi } from './fakes';

test('a daemon with another API version: the items, and a warning in the output channel', { timeout: 15000 }, async () => {
  const sandbox = new Sandbox();
  const daemon = await sandbox.start();
  let snapshot: StatusSnapshot;
  let info: DaemonInfo;
  try {
    const real = await DaemonConnection.open(sandbox.socketPath);
    snapshot = await real.call<StatusSnapshot>('status.subscribe');
    info = await real.call<DaemonInfo>('daemon.info');
    real.dispose();
  } finally {
    await daemon.stop();
  }

  const server = net.createServer((socket) => {
    const rpc = createMessageConnection(new SocketMessageReader(socket), new SocketMessageWriter(socket));
    rpc.onRequest('status.subscribe', () => snapshot);
    rpc.onRequest('daemon.info', () => ({ ...info, apiVersion: 2 }));
    socket.on('close', () => rpc.dispose());
    rpc.listen();
  });
  await new Promise<void>((resolve) => server.listen(sandbox.socketPath, resolve));
  const bar = new FakeBar();
  const ui = new FakeUi();
  const controller = new StatusController({ socketPath: sandbox.socketPath, statusBar: bar, ui });
  try {
    controller.start();
    const warning = await waitFor('the warning', () => ui.logs.find((line) => line.includes('API version')));
    assert.equal(
      warning,
      `warning: the daemon (simpleaided ${info.version}) speaks API version 2, ` +
        'this extension speaks 1: update the one that is behind',
    );
    assert.deepEqual(
      bar.texts,
      snapshot.status.chips.map((c) => c.text),
    );
  } finally {
    controller.dispose();
    server.close();
    sandbox.cleanUp();
  }
});
