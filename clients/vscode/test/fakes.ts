/** Fakes of the seam: a status bar and a UI that record what the controller asks of them. */

import { BarItem, PickItem, StatusBar, Timer, Ui } from '../src/seam';

export class FakeBar implements StatusBar {
  readonly renders: BarItem[][] = [];

  render(items: readonly BarItem[]): void {
    this.renders.push([...items]);
  }

  /** What the status bar shows now. */
  get items(): BarItem[] {
    return this.renders[this.renders.length - 1] ?? [];
  }

  get texts(): string[] {
    return this.items.map((item) => item.text);
  }
}

/** A UI whose answers are scripted: `pick` chooses from the quick pick, `passphrase` is typed. */
export class FakeUi implements Ui {
  readonly errors: string[] = [];
  readonly infos: string[] = [];
  readonly logs: string[] = [];
  readonly outputs: Array<{ title: string; lines: string[] }> = [];
  readonly picks: Array<PickItem<unknown>[]> = [];
  readonly prompts: string[] = [];
  pick: (items: PickItem<unknown>[]) => PickItem<unknown> | undefined = () => undefined;
  passphrase: string | undefined;

  async showQuickPick<T>(items: PickItem<T>[]): Promise<PickItem<T> | undefined> {
    this.picks.push(items);
    return this.pick(items) as PickItem<T> | undefined;
  }

  async askPassphrase(prompt: string): Promise<string | undefined> {
    this.prompts.push(prompt);
    return this.passphrase;
  }

  showOutput(title: string, lines: readonly string[]): void {
    this.outputs.push({ title, lines: [...lines] });
  }

  showError(message: string): void {
    this.errors.push(message);
  }

  showInfo(message: string): void {
    this.infos.push(message);
  }

  log(line: string): void {
    this.logs.push(line);
  }
}

/** Real timers that record each delay asked for. */
export class RecordingTimer implements Timer {
  readonly delays: number[] = [];

  setTimeout(callback: () => void, ms: number): unknown {
    this.delays.push(ms);
    return setTimeout(callback, ms);
  }

  clearTimeout(handle: unknown): void {
    clearTimeout(handle as NodeJS.Timeout);
  }
}
