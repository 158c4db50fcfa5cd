/** `StatusController` against a real daemon: the status bar follows it, the commands work. The
 * daemon's config serves a workspace that does not exist, so it reports a warning. */

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { DaemonConnection } from '../src/connection';
import { StatusController } from '../src/controller';
import { LlmSection, RunView, StatusDocument } from '../src/protocol';
import { BarItem } from '../src/seam';
import { Daemon, Sandbox, waitFor } from './daemon';
import { FakeBar, FakeUi } from './fakes';

const PASSPHRASE = 'a long enough passphrase';
const COMMANDS = [
  'simpleaide.showStatus',
  'simpleaide.toggleVault',
  'simpleaide.showStatus',
  'simpleaide.showLlm',
  'simpleaide.showRuns',
  'simpleaide.showStatus',
];

let sandbox: Sandbox;
let daemon: Daemon;
let other: DaemonConnection; // a second client, changing things behind the controller's back
let bar: FakeBar;
let ui: FakeUi;
let controller: StatusController;

before(async () => {
  sandbox = new Sandbox({ missingWorkspace: true });
  daemon = await sandbox.start();
  other = await DaemonConnection.open(sandbox.socketPath);
  bar = new FakeBar();
  ui = new FakeUi();
  controller = new StatusController({ socketPath: sandbox.socketPath, statusBar: bar, ui });
  controller.start();
  await waitFor('the first status document', () => controller.connected);
});

after(async () => {
  controller?.dispose();
  other?.dispose();
  await daemon?.stop();
  sandbox?.cleanUp();
});

/** What the items of a document must say, as [text, tooltip, level]: its chips, then the CLI's
 * `⚠ N` chip when it has warnings (clients/python/simpleaide/chips.py). */
function expected(doc: StatusDocument): string[][] {
  const rows = doc.chips.map((c) => [c.text, c.tooltip, c.level]);
  if (doc.warnings.length) {
    rows.push([`⚠ ${doc.warnings.length}`, doc.warnings.map((w) => `Warning: ${w}`).join('\n'), 'warn']);
  }
  return rows;
}

function shown(items: readonly BarItem[]): string[][] {
  return items.map((i) => [i.text, i.tooltip, i.level]);
}

/** Waits until the status bar shows the daemon's document, as a fresh `status.get` reads it.
 * Tooltips hold ages ("0s ago"), so the bar is compared only with a document that reads the
 * same just before and just after looking at the bar: a second boundary in between makes the
 * check try again (the daemon sends the new words within a second). */
async function barMatchesDaemon(): Promise<void> {
  let says: string[][] = [];
  const get = async (): Promise<string[][]> => expected(await other.call<StatusDocument>('status.get'));
  await waitFor(
    'the status bar to show the daemon\'s document',
    async () => {
      const before = JSON.stringify(await get());
      const items = JSON.stringify(shown(bar.items));
      says = await get();
      return before === JSON.stringify(says) && items === before;
    },
    3000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}: shows ${JSON.stringify(shown(bar.items))}, daemon says ${JSON.stringify(says)}`);
  });
}

test('the items carry the chips\' words, tooltips and commands, then the warnings', { timeout: 10000 }, async () => {
  const doc = controller.status;
  assert.ok(doc);
  assert.deepEqual(
    doc.chips.map((c) => c.name),
    ['env', 'vault', 'db', 'llm', 'runs'],
  );
  assert.equal(doc.warnings.length, 1);
  assert.ok(doc.warnings[0].startsWith(`workspace ${sandbox.missingWorkspace} is not served: `), doc.warnings[0]);
  assert.deepEqual(bar.items.map((i) => [i.id, i.text, i.tooltip, i.level]), [
    ...doc.chips.map((c) => [c.name, c.text, c.tooltip, c.level]), // the Env tooltip is the chip's
    ['warnings', '⚠ 1', `Warning: ${doc.warnings[0]}`, 'warn'],
  ]);
  assert.deepEqual(
    bar.items.map((i) => i.command),
    COMMANDS,
  );
  // The same words as a fresh status.get (what the CLI prints): nothing re-worded.
  await barMatchesDaemon();
  assert.equal(bar.texts[0], 'DEV 🟢');
  assert.ok(ui.logs.some((line) => line.startsWith('connected to the daemon on')));
  assert.ok(!ui.logs.some((line) => line.includes('API version')), 'no version warning');
});

test('the Runs item follows a run created by another client', { timeout: 10000 }, async () => {
  const run = await other.call<RunView>('runs.create', { workspace: sandbox.workspace, title: 'Add the login page' });
  await other.call('steps.create', { runId: run.id, name: 'plan', start: true });
  await barMatchesDaemon(); // the tooltips too
  const runs = bar.items[4];
  assert.equal(runs.text, 'Run ⏳ 1');
  assert.equal(runs.tooltip, `1 run running: ${run.id} “Add the login page”`); // named: few are active
  assert.equal(runs.level, 'warn');
});

test('the Vault item follows init, lock and unlock', { timeout: 15000 }, async () => {
  await controller.toggleVault();
  assert.deepEqual(ui.infos, ['No vault yet: run simpleaide vault init in a terminal']);
  assert.equal(bar.texts[1], 'Vault –');

  await other.call('vault.init', { passphrase: PASSPHRASE });
  await waitFor('Vault 🔓', () => bar.texts[1] === 'Vault 🔓');
  assert.equal(bar.items[1].command, 'simpleaide.toggleVault');

  await controller.toggleVault(); // unlocked → vault.lock
  await waitFor('Vault 🔒', () => bar.texts[1] === 'Vault 🔒');
  assert.deepEqual(ui.prompts, []);

  ui.passphrase = PASSPHRASE;
  await controller.toggleVault(); // locked → the passphrase → vault.unlock
  await waitFor('Vault 🔓 again', () => bar.texts[1] === 'Vault 🔓');
  assert.equal(ui.prompts.length, 1);
  await barMatchesDaemon();

  await controller.toggleVault();
  await waitFor('Vault 🔒 again', () => bar.texts[1] === 'Vault 🔒');
  ui.passphrase = 'not the passphrase';
  await controller.toggleVault();
  assert.deepEqual(ui.errors, ['wrong passphrase']);
  assert.equal(bar.texts[1], 'Vault 🔒');

  ui.passphrase = undefined; // the user cancels the input box: nothing happens
  await controller.toggleVault();
  assert.deepEqual(ui.errors, ['wrong passphrase']);
  assert.equal(ui.prompts.length, 3);
});

test('vault.unlock may take longer than the request timeout: the daemon slows down after wrong passphrases', { timeout: 15000 }, async () => {
  // The vault is locked, after a wrong passphrase (the test before). Each wrong one doubles the
  // daemon's wait before the next attempt: 0.1, 0.2, 0.4, 0.8 s, longer than 0.3 s at the end.
  const patientUi = new FakeUi();
  const patient = new StatusController({
    socketPath: sandbox.socketPath,
    statusBar: new FakeBar(),
    ui: patientUi,
    requestTimeoutMs: 300,
  });
  try {
    patient.start();
    await waitFor('connected', () => patient.connected);
    assert.equal(patient.status?.vault.state, 'locked');
    patientUi.passphrase = 'not the passphrase';
    for (let i = 0; i < 4; i++) {
      await patient.toggleVault();
    }
    patientUi.passphrase = PASSPHRASE;
    await patient.toggleVault(); // waits 0.8 s for its turn
    assert.deepEqual(patientUi.errors, Array(4).fill('wrong passphrase'));
    await waitFor('Vault 🔓', () => bar.texts[1] === 'Vault 🔓');
    assert.equal(patient.connected, true);
  } finally {
    patient.dispose();
  }
});

test('showRuns: the runs in a quick pick; the one picked, with its steps, in the output', { timeout: 10000 }, async () => {
  ui.pick = (items) => items.find((item) => item.label.includes('Add the login page'));
  await controller.showRuns();
  const offered = ui.picks[ui.picks.length - 1];
  assert.equal(offered.length, 1);
  assert.equal(offered[0].label, '⏳ Add the login page');
  const run = await other.call<RunView>('runs.get', { runId: offered[0].value, steps: true });
  assert.equal(offered[0].description, run.id);
  const shown = ui.outputs[ui.outputs.length - 1];
  assert.equal(shown.title, `Run ${run.id}`);
  assert.ok(shown.lines.some((line) => /^id: +/.test(line) && line.endsWith(run.id)), shown.lines.join('\n'));
  assert.ok(shown.lines.some((line) => /^1 +01_plan +running /.test(line)), shown.lines.join('\n'));
  assert.deepEqual(ui.errors, ['wrong passphrase']); // from the vault test: nothing new
});

test('showLlm: the backends the daemon reports, in the output channel', { timeout: 10000 }, async () => {
  const llm = await other.call<LlmSection>('llm.status');
  assert.deepEqual(llm.backends, []); // none configured in the sandbox
  await controller.showLlm();
  assert.deepEqual(ui.outputs[ui.outputs.length - 1], {
    title: 'LLM backends',
    lines: ['no LLM backends configured ([[llm.backends]] in the config file)'],
  });
});

test('showStatus: the chips with their tooltips, then the details', { timeout: 10000 }, async () => {
  await controller.showStatus();
  const { title, lines } = ui.outputs[ui.outputs.length - 1];
  assert.equal(title, 'Status');
  for (const chip of controller.status?.chips ?? []) {
    assert.ok(lines.some((line) => line.startsWith(chip.text) && line.endsWith(chip.tooltip)), chip.text);
  }
  assert.ok(lines.includes(`socket:   ${sandbox.socketPath}`), lines.join('\n'));
});

test('commands without a daemon say so, and never throw', { timeout: 10000 }, async () => {
  const lonelyUi = new FakeUi();
  const lonely = new StatusController({
    socketPath: `${sandbox.root}/run/nobody.sock`,
    statusBar: new FakeBar(),
    ui: lonelyUi,
  });
  for (const command of [lonely.showRuns, lonely.toggleVault, lonely.showLlm, lonely.showStatus]) {
    await command.call(lonely);
  }
  assert.equal(lonelyUi.errors.length, 4);
  for (const error of lonelyUi.errors) {
    assert.equal(
      error,
      `No daemon answers on ${sandbox.root}/run/nobody.sock (not connected yet). Start it with: simpleaide daemon start`,
    );
  }
  lonely.dispose();
});
