/**
 * The seam between the extension's logic and VS Code: the few things the logic asks of the
 * editor, as plain interfaces. `extension.ts` implements them with the VS Code API; tests
 * implement them with fakes, so the logic runs under Node's test runner without VS Code.
 */

import { Level } from './protocol';

/** What one status-bar item shows: VS Code's `text` (with `$(icon)` codicons), `tooltip`, the
 * command a click runs, and the chip's level (which picks a background colour). */
export interface BarItem {
  id: string;
  text: string;
  tooltip: string;
  command: string;
  level: Level;
}

/** One entry of a quick pick (VS Code's `QuickPickItem` fields) carrying a value. */
export interface PickItem<T> {
  label: string;
  description?: string;
  detail?: string;
  value: T;
}

/** The status bar: shows exactly `items`, in order, hiding whatever it showed before. */
export interface StatusBar {
  render(items: readonly BarItem[]): void;
}

/** Dialogs and the output channel. */
export interface Ui {
  /** Resolves to the item picked, or `undefined` when the user dismissed the pick. */
  showQuickPick<T>(items: PickItem<T>[], placeholder: string): Promise<PickItem<T> | undefined>;
  /** Resolves to what the user typed (never echoed), or `undefined` when cancelled. */
  askPassphrase(prompt: string): Promise<string | undefined>;
  /** Shows `lines` under `title` in the output channel, and reveals it. */
  showOutput(title: string, lines: readonly string[]): void;
  showError(message: string): void;
  showInfo(message: string): void;
  /** Appends a line to the output channel without revealing it (connections, warnings). */
  log(line: string): void;
}

/** What a timer is for: the next reconnection attempt, the next liveness ping, or the moment a
 * connection counts as stable (the backoff starts over). Tests tell them apart by it. */
export type TimerPurpose = 'retry' | 'ping' | 'stable';

/** Timers, injectable so tests can record the delays and fire the timers themselves. */
export interface Timer {
  setTimeout(callback: () => void, ms: number, purpose: TimerPurpose): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimer: Timer = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
