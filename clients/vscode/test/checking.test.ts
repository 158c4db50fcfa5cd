/** The DB item while the daemon's first database probe waits for an answer, against a real
 * daemon whose PostgreSQL host takes connections and says nothing: "DB …" at level
 * `checking` (never OFF), said so in the status output, then the real state once the host
 * hangs up. */

import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, test } from 'node:test';

import { StatusController } from '../src/controller';
import { Daemon, Sandbox, waitFor } from './daemon';
import { FakeBar, FakeUi } from './fakes';

let silent: net.Server;
const held = new Set<net.Socket>(); // the connections the silent host took
let sandbox: Sandbox;
let daemon: Daemon;
let bar: FakeBar;
let ui: FakeUi;
let controller: StatusController;

before(async () => {
  silent = net.createServer((socket) => {
    held.add(socket);
    socket.on('error', () => undefined); // reset by the daemon when it gives up: expected
    socket.on('close', () => held.delete(socket));
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const { port } = silent.address() as net.AddressInfo;
  sandbox = new Sandbox({
    config: `[db]\nprobe_seconds = 3600\ntimeout_seconds = 60\n[db.DEV]\nurl = "postgresql://postgres@127.0.0.1:${port}/test"\n`,
  });
  daemon = await sandbox.start();
  bar = new FakeBar();
  ui = new FakeUi();
  controller = new StatusController({ socketPath: sandbox.socketPath, statusBar: bar, ui });
  controller.start();
  await waitFor('the first status document', () => controller.connected);
});

after(async () => {
  controller?.dispose();
  held.forEach((socket) => socket.destroy());
  silent?.close();
  await daemon?.stop();
  sandbox?.cleanUp();
});

test('the DB item says checking until the first probe answers, then the real state', { timeout: 20000 }, async () => {
  const db = bar.items[2];
  assert.deepEqual([db.id, db.text, db.level, db.tooltip], [
    'db',
    'DB …',
    'checking',
    'DEV database (postgres): checking, no answer yet',
  ]);
  await controller.showStatus();
  const lines = ui.outputs[ui.outputs.length - 1].lines;
  assert.ok(lines.includes('DB … — DEV database (postgres): checking, no answer yet'), lines.join('\n'));
  assert.ok(
    lines.some((line) => /^database: +DEV postgres, checking \(no answer yet\)$/.test(line)),
    lines.join('\n'),
  );

  await waitFor('the daemon to be connected to the silent host', () => held.size > 0);
  held.forEach((socket) => socket.destroy()); // the host hangs up: the probe answers now
  const off = await waitFor('the DB item to leave checking', () => bar.items[2].level !== 'checking' && bar.items[2]);
  assert.equal(off.text, 'DB OFF');
  assert.equal(off.level, 'off');
  assert.ok(off.tooltip.startsWith('DEV database: off ('), off.tooltip);
});
