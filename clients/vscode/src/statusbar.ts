/**
 * What the extension shows, as pure functions of the daemon's documents: the five status-bar
 * items and the warnings item, the "daemon unreachable" item, and the lines of the output
 * channel and quick pick.
 *
 * The chips' words come from the daemon (`chips` in the status document), as for the CLI and the
 * web header: they are laid out here, never re-worded. No `vscode` import, so tests run in Node.
 */

import { BarItem, PickItem } from './seam';
import { Chip, ChipName, LlmSection, RunRow, RunView, StatusDocument } from './protocol';

/** The commands a click runs (contributed in package.json). */
export const Command = {
  showStatus: 'simpleaide.showStatus',
  showRuns: 'simpleaide.showRuns',
  toggleVault: 'simpleaide.toggleVault',
  showLlm: 'simpleaide.showLlm',
  reconnect: 'simpleaide.reconnect',
} as const;

/** The five items in status-bar order, with the name shown when the daemon sent no chip. */
const SLOTS: ReadonlyArray<{ chip: ChipName; name: string; command: string }> = [
  { chip: 'env', name: 'Env', command: Command.showStatus },
  { chip: 'vault', name: 'Vault', command: Command.toggleVault },
  { chip: 'db', name: 'DB', command: Command.showStatus },
  { chip: 'llm', name: 'LLM', command: Command.showLlm },
  { chip: 'runs', name: 'Runs', command: Command.showRuns },
];

/** The run marks of the chips (simpleaided/domain/chips.py), for the runs quick pick. */
const RUN_MARKS: Readonly<Record<string, string>> = {
  completed: '✓',
  failed: '✗',
  cancelled: '⊘',
  pending: '⏸',
  running: '⏳',
};

/**
 * The items of a status document: the five chips in the order env, vault, db, llm, runs, each
 * with its text and tooltip (a chip the document lacks gives `<Name> ?` rather than no item),
 * then, only when the daemon reports warnings, a `⚠ N` item as every CLI format appends, whose
 * tooltip has one `Warning: …` line each (as the CLI's waybar tooltip).
 */
export function itemsFor(doc: StatusDocument): BarItem[] {
  const chips = new Map<string, Chip>((doc.chips ?? []).map((chip) => [chip.name, chip]));
  const items = SLOTS.map((slot): BarItem => {
    const chip = chips.get(slot.chip);
    return chip
      ? { id: slot.chip, text: chip.text, tooltip: chip.tooltip, command: slot.command, level: chip.level }
      : {
          id: slot.chip,
          text: `${slot.name} ?`,
          tooltip: `The daemon sent no ${slot.chip} chip`,
          command: slot.command,
          level: 'off',
        };
  });
  const warnings = doc.warnings ?? [];
  if (warnings.length) {
    items.push({
      id: 'warnings',
      text: `⚠ ${warnings.length}`,
      tooltip: warnings.map((w) => `Warning: ${w}`).join('\n'),
      command: Command.showStatus,
      level: 'warn',
    });
  }
  return items;
}

/** The single item shown while no daemon answers; a click retries at once. */
export function unreachableItems(socketPath: string, reason: string): BarItem[] {
  return [
    {
      id: 'unreachable',
      text: '$(debug-disconnect) SimpleAide: daemon unreachable',
      tooltip: `No daemon answers on ${socketPath} (${reason}). Start it: simpleaide daemon start — retrying…`,
      command: Command.reconnect,
      level: 'bad',
    },
  ];
}

/** The LLM backends as the CLI's `simpleaide llm status` prints them. */
export function llmTable(llm: LlmSection): string[] {
  if (!llm.backends.length) {
    return ['no LLM backends configured ([[llm.backends]] in the config file)'];
  }
  const rows = llm.backends.map((b) => [
    b.name,
    b.kind,
    b.online ? 'online' : 'OFF',
    b.latencyMs === null ? '–' : `${formatNumber(b.latencyMs)} ms`,
    b.model ?? (b.models.join(', ') || '–'),
    b.error ?? '',
  ]);
  return [
    ...table(['NAME', 'KIND', 'STATE', 'LATENCY', 'MODEL', 'ERROR'], rows),
    `${llm.online}/${llm.total} online`,
  ];
}

/** Runs for the quick pick: the chip's mark and the title; the id; when it started and ended. */
export function runPickItems(runs: readonly RunRow[]): PickItem<string>[] {
  return runs.map((run) => {
    const title =
      run.status === 'corrupt' ? `(corrupt: ${run.errorMessage ?? '?'})` : oneLine(run.title) || '(untitled)';
    const when = [`started ${localTime(run.startedAt)}`];
    if (run.completedAt) {
      when.push(`ended ${localTime(run.completedAt)}`);
    }
    const steps = `${run.stepCount} step${run.stepCount === 1 ? '' : 's'}`;
    return {
      label: `${RUN_MARKS[run.status] ?? '?'} ${title}`,
      description: run.id,
      detail: [run.status, steps, ...when].join(' · '),
      value: run.id,
    };
  });
}

/** A run and its steps, as the CLI's `simpleaide runs show` prints them. */
export function runLines(run: RunView): string[] {
  const lines = fields([
    ['id', run.id],
    ['title', oneLine(run.title) || '-'],
    ['status', run.status],
    ['workspace', run.workspace],
    ['started', localTime(run.startedAt)],
    ['completed', localTime(run.completedAt)],
    ['error', oneLine(run.errorMessage) || '-'],
    ['steps', String(run.stepCount)],
  ]);
  if (run.steps?.length) {
    const rows = run.steps.map((s) => [
      String(s.number),
      s.folder,
      s.status,
      localTime(s.startedAt),
      duration(s.startedAt, s.completedAt),
      oneLine(s.errorMessage) || '-',
    ]);
    lines.push('', ...table(['#', 'STEP', 'STATUS', 'STARTED', 'TOOK', 'ERROR'], rows));
  }
  return lines;
}

/** The status document as readable lines: the chips with their tooltips, then the details. */
export function statusLines(doc: StatusDocument): string[] {
  const { runs, vault, db, llm, api } = doc;
  const dbWords = db.connected
    ? `${db.type ?? '?'}, connected, ${db.readOnly ? 'read-only' : 'read-write'}`
    : db.checking
      ? `${db.type ?? '?'}, checking (no answer yet)${db.readOnly ? ', read-only' : ''}`
      : `off (${db.error ?? 'not connected'})${db.readOnly ? ', read-only' : ''}`;
  return [
    // Not a table: emoji widths vary between fonts, so columns after them would not align.
    ...(doc.chips ?? []).map((c) => `${c.text} — ${c.tooltip.replace(/\n/g, '; ')}`),
    ...(doc.warnings ?? []).map((w) => `Warning: ${w}`),
    '',
    ...fields([
      ['profile', doc.env],
      ['runs', `${runs.active} active, ${runs.pending} pending, ${runs.total} in all`],
      ['last run', runs.last ? `${runs.last.id} ${runs.last.status}` : '-'],
      ['vault', vault.state],
      ['database', `${db.env} ${dbWords}`],
      ['LLM', `${llm.online}/${llm.total} online`],
      ['socket', api.socket],
      ['HTTP', api.enabled && api.url ? api.url : 'off'],
      ['as of', localTime(doc.generatedAt)],
    ]),
  ];
}

/** A short age as the daemon words it: `45s`, `12m`, `5h`, `3d`. */
export function formatAge(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) {
    return '?';
  }
  const seconds = Math.max(Math.floor(ms / 1000), 0);
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

/** A wire timestamp in local time, to the minute (`-` if absent), as the CLI shows it. */
export function localTime(stamp: string | null | undefined): string {
  const moment = stamp ? new Date(stamp) : undefined;
  if (!moment || Number.isNaN(moment.getTime())) {
    return '-';
  }
  const two = (n: number): string => String(n).padStart(2, '0');
  const day = `${moment.getFullYear()}-${two(moment.getMonth() + 1)}-${two(moment.getDate())}`;
  return `${day} ${two(moment.getHours())}:${two(moment.getMinutes())}`;
}

function duration(start: string | null, end: string | null): string {
  if (!start || !end) {
    return '-';
  }
  return formatAge(Date.parse(end) - Date.parse(start));
}

/** Up to six significant digits, like Python's `:g`. */
function formatNumber(value: number): string {
  return String(Number(value.toPrecision(6)));
}

function oneLine(text: string | null | undefined): string {
  return (text ?? '').split(/\s+/).filter(Boolean).join(' ');
}

/** Aligned columns, two spaces apart, with a header row. */
function table(headers: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  return [headers, ...rows].map((row) =>
    row
      .map((cell, i) => cell.padEnd(widths[i]))
      .join('  ')
      .trimEnd(),
  );
}

/** `name: value` lines with the values aligned. */
function fields(pairs: ReadonlyArray<readonly [string, string]>): string[] {
  const pad = Math.max(...pairs.map(([name]) => name.length)) + 1;
  return pairs.map(([name, value]) => `${`${name}:`.padEnd(pad)} ${value}`);
}
