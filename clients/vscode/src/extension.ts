/**
 * The VS Code side of the seam, and the only module that imports `vscode`: six status-bar
 * items (the five chips, then `⚠ N` while the daemon reports warnings), one output channel,
 * the dialogs, the commands and the `simpleaide.socketPath` setting. Everything else is in
 * `StatusController`, which tests drive without VS Code.
 */

import * as vscode from 'vscode';

import { StatusController } from './controller';
import { Level, resolveSocketPath } from './protocol';
import { BarItem, PickItem, StatusBar, Ui } from './seam';
import { Command } from './statusbar';

// The first also shows 'unreachable'; the last is hidden while the daemon reports no warnings.
const SLOT_NAMES = ['Env', 'Vault', 'DB', 'LLM', 'Runs', 'Warnings'];
const FIRST_PRIORITY = 100; // decreasing priorities keep the items in order, left to right

let controller: StatusController | undefined;

/** The background colour of a level: VS Code allows only the error and warning ones. */
function background(level: Level): vscode.ThemeColor | undefined {
  if (level === 'bad') return new vscode.ThemeColor('statusBarItem.errorBackground');
  if (level === 'warn') return new vscode.ThemeColor('statusBarItem.warningBackground');
  return undefined;
}

/** The status bar as six slots; rendering fills the first ones and hides the rest. */
function statusBar(context: vscode.ExtensionContext): StatusBar {
  const slots: vscode.StatusBarItem[] = [];
  SLOT_NAMES.forEach((name, i) => {
    const slot = vscode.window.createStatusBarItem(
      `simpleaide.${name.toLowerCase()}`,
      vscode.StatusBarAlignment.Left,
      FIRST_PRIORITY - i,
    );
    slot.name = `SimpleAide ${name}`; // how the status bar's context menu lists it
    slots.push(slot);
    context.subscriptions.push(slot);
  });
  return {
    render(items: readonly BarItem[]): void {
      slots.forEach((slot, i) => {
        const item = items[i];
        if (item === undefined) {
          slot.hide();
          return;
        }
        slot.text = item.text;
        slot.tooltip = item.tooltip;
        slot.command = item.command;
        slot.backgroundColor = background(item.level);
        slot.show();
      });
    },
  };
}

function ui(output: vscode.OutputChannel): Ui {
  return {
    async showQuickPick<T>(items: PickItem<T>[], placeholder: string): Promise<PickItem<T> | undefined> {
      return vscode.window.showQuickPick(items, {
        placeHolder: placeholder,
        matchOnDescription: true,
        matchOnDetail: true,
      });
    },
    async askPassphrase(prompt: string): Promise<string | undefined> {
      return vscode.window.showInputBox({ prompt, password: true, ignoreFocusOut: true });
    },
    showOutput(title: string, lines: readonly string[]): void {
      output.appendLine('');
      output.appendLine(`── ${title} ──`);
      lines.forEach((line) => output.appendLine(line));
      output.show(true);
    },
    showError(message: string): void {
      void vscode.window.showErrorMessage(message);
    },
    showInfo(message: string): void {
      void vscode.window.showInformationMessage(message);
    },
    log(line: string): void {
      output.appendLine(`[${new Date().toLocaleTimeString()}] ${line}`);
    },
  };
}

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('SimpleAide');
  context.subscriptions.push(output);
  const bar = statusBar(context);
  const dialogs = ui(output);

  const connect = (): void => {
    controller?.dispose();
    const setting = vscode.workspace.getConfiguration('simpleaide').get<string>('socketPath', '');
    controller = new StatusController({
      socketPath: resolveSocketPath(setting),
      statusBar: bar,
      ui: dialogs,
    });
    controller.start();
  };

  context.subscriptions.push(
    vscode.commands.registerCommand(Command.showStatus, () => controller?.showStatus()),
    vscode.commands.registerCommand(Command.showRuns, () => controller?.showRuns()),
    vscode.commands.registerCommand(Command.toggleVault, () => controller?.toggleVault()),
    vscode.commands.registerCommand(Command.showLlm, () => controller?.showLlm()),
    vscode.commands.registerCommand(Command.reconnect, () => controller?.reconnect()),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration('simpleaide.socketPath')) {
        connect();
      }
    }),
    { dispose: () => controller?.dispose() },
  );
  connect();
}

export function deactivate(): void {
  controller?.dispose();
  controller = undefined;
}
