/**
 * One JSON-RPC connection to the daemon's Unix socket, through `vscode-jsonrpc` (whose socket
 * reader and writer speak `Content-Length:` framing; the daemon detects it per connection).
 *
 * Errors: `DaemonError` (the daemon answered with a JSON-RPC error: `code`, `message`, `data`)
 * and `NotConnectedError` (no daemon answers, or the connection closed), so that callers can
 * word each for the user without knowing about `vscode-jsonrpc`.
 */

import * as net from 'node:net';
import {
  createMessageConnection,
  MessageConnection,
  ResponseError,
  SocketMessageReader,
  SocketMessageWriter,
} from 'vscode-jsonrpc/node';

import { StatusDocument, StatusSnapshot } from './protocol';

/** The daemon answered a request with a JSON-RPC error. */
export class DaemonError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'DaemonError';
  }
}

/** No daemon answers on the socket, or the connection to it closed. */
export class NotConnectedError extends Error {
  constructor(
    readonly socketPath: string,
    readonly reason: string,
  ) {
    super(`no daemon answers on ${socketPath} (${reason})`);
    this.name = 'NotConnectedError';
  }
}

/** Why a connection attempt failed, in a few words for a tooltip. */
export function describeSocketError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT':
      return 'no socket there';
    case 'ECONNREFUSED':
      return 'connection refused: a stale socket';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'connection closed by the daemon';
    default:
      return err.code ? `${err.code}: ${err.message}` : err.message;
  }
}

export class DaemonConnection {
  private closed = false;
  private closeReason = 'the daemon closed the connection';
  private readonly closeListeners: Array<(reason: string) => void> = [];

  private constructor(
    readonly socketPath: string,
    private readonly socket: net.Socket,
    private readonly rpc: MessageConnection,
  ) {
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.closeReason = describeSocketError(err);
    });
    rpc.onClose(() => this.closedByPeer());
    rpc.listen();
  }

  /** Connects to `socketPath`; rejects with `NotConnectedError` saying why (no socket, refused,
   * permission denied, no answer within `timeoutMs`). */
  static open(socketPath: string, timeoutMs = 2000): Promise<DaemonConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(socketPath);
      const fail = (reason: string): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new NotConnectedError(socketPath, reason));
      };
      const onError = (err: NodeJS.ErrnoException): void => fail(describeSocketError(err));
      const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(DaemonConnection.over(socket, socketPath));
      });
    });
  }

  /** A connection over a socket that is already connected (tests wrap its writes). */
  static over(socket: net.Socket, socketPath: string): DaemonConnection {
    const rpc = createMessageConnection(
      new SocketMessageReader(socket, 'utf-8'),
      new SocketMessageWriter(socket, 'utf-8'),
    );
    return new DaemonConnection(socketPath, socket, rpc);
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Calls `method` with named params; rejects with `DaemonError` or `NotConnectedError`. */
  async call<T>(method: string, params?: object): Promise<T> {
    if (this.closed) {
      throw new NotConnectedError(this.socketPath, this.closeReason);
    }
    try {
      return params === undefined
        ? await this.rpc.sendRequest<T>(method)
        : await this.rpc.sendRequest<T>(method, params);
    } catch (err) {
      if (this.closed) {
        throw new NotConnectedError(this.socketPath, this.closeReason);
      }
      if (err instanceof ResponseError) {
        throw new DaemonError(err.code, err.message, err.data);
      }
      throw err;
    }
  }

  /**
   * `status.subscribe`: calls `onStatus` with the document now, then with each newer one the
   * daemon sends (`status.changed`). A notification may overtake the answer, so each document
   * is delivered only if its `seq` is newer than the last one delivered.
   */
  async subscribe(onStatus: (doc: StatusDocument, seq: number) => void): Promise<StatusSnapshot> {
    let lastSeq = -1;
    const deliver = (snapshot: StatusSnapshot): void => {
      if (snapshot.seq > lastSeq) {
        lastSeq = snapshot.seq;
        onStatus(snapshot.status, snapshot.seq);
      }
    };
    this.rpc.onNotification('status.changed', (params: StatusSnapshot) => deliver(params));
    const snapshot = await this.call<StatusSnapshot>('status.subscribe');
    deliver(snapshot);
    return snapshot;
  }

  /** Calls `listener` once, with the reason, when the daemon closes the connection (not after
   * `dispose`). */
  onClose(listener: (reason: string) => void): void {
    this.closeListeners.push(listener);
  }

  /** Closes the connection; requests still waiting reject with `NotConnectedError`. */
  dispose(): void {
    this.closed = true;
    this.rpc.dispose();
    this.socket.destroy();
  }

  private closedByPeer(): void {
    if (this.closed) {
      return;
    }
    this.dispose(); // also rejects the requests waiting for an answer that will never come
    for (const listener of this.closeListeners) {
      listener(this.closeReason);
    }
  }
}
