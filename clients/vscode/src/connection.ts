/**
 * One JSON-RPC connection to the daemon's Unix socket, through `vscode-jsonrpc` (whose socket
 * reader and writer speak `Content-Length:` framing; the daemon detects it per connection).
 *
 * Errors: `DaemonError` (the daemon answered with a JSON-RPC error: `code`, `message`, `data`)
 * and `NotConnectedError` (no daemon answers, or the connection closed), so that callers can
 * word each for the user without knowing about `vscode-jsonrpc`.
 *
 * Every request has a deadline: a daemon can accept connections and never answer (stopped with
 * SIGSTOP, stuck in a loop, a socket-activated unit that fails to start), and nothing else would
 * ever settle the request.
 */

import * as net from 'node:net';
import {
  createMessageConnection,
  Message,
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

/** How long a request may wait for its answer, by default. */
export const REQUEST_TIMEOUT_MS = 5000;

/** The reason given when the daemon lets a deadline pass: `no answer within 5 s`. */
export function noAnswerWithin(ms: number): string {
  return `no answer within ${ms / 1000} s`;
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

/**
 * A writer whose writes never fail. `vscode-jsonrpc`'s `sendRequest` rethrows a failed write
 * inside a promise executor, where nothing can catch it: an unhandled rejection whenever a
 * request is written as the connection closes (a timeout, `dispose`). A failed write means the
 * socket is closing, and closing rejects the waiting requests anyway.
 */
class SocketWriter extends SocketMessageWriter {
  override async write(msg: Message): Promise<void> {
    try {
      await super.write(msg);
    } catch {
      // The close rejects the request with NotConnectedError.
    }
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
    private readonly requestTimeoutMs: number,
  ) {
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.closeReason = describeSocketError(err);
    });
    rpc.onClose(() => this.close(this.closeReason));
    rpc.listen();
  }

  /** Connects to `socketPath`; rejects with `NotConnectedError` saying why (no socket, refused,
   * permission denied, no answer within `timeoutMs`). Each request then waits at most
   * `requestTimeoutMs` for its answer. */
  static open(
    socketPath: string,
    timeoutMs = 2000,
    requestTimeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<DaemonConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(socketPath);
      const fail = (reason: string): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new NotConnectedError(socketPath, reason));
      };
      const onError = (err: NodeJS.ErrnoException): void => fail(describeSocketError(err));
      const timer = setTimeout(() => fail(noAnswerWithin(timeoutMs)), timeoutMs);
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(DaemonConnection.over(socket, socketPath, requestTimeoutMs));
      });
    });
  }

  /** A connection over a socket that is already connected (tests wrap its writes). */
  static over(
    socket: net.Socket,
    socketPath: string,
    requestTimeoutMs = REQUEST_TIMEOUT_MS,
  ): DaemonConnection {
    const rpc = createMessageConnection(
      new SocketMessageReader(socket, 'utf-8'),
      new SocketWriter(socket, 'utf-8'),
    );
    return new DaemonConnection(socketPath, socket, rpc, requestTimeoutMs);
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Calls `method` with named params; rejects with `DaemonError` or `NotConnectedError`. With
   * no answer within `timeoutMs` (the connection's request timeout by default), the connection
   * closes (its other requests would wait as long), and `onClose` says so: `no answer within
   * 5 s`. */
  async call<T>(method: string, params?: object, timeoutMs = this.requestTimeoutMs): Promise<T> {
    if (this.closed) {
      throw new NotConnectedError(this.socketPath, this.closeReason);
    }
    const deadline = setTimeout(() => this.close(noAnswerWithin(timeoutMs)), timeoutMs);
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
    } finally {
      clearTimeout(deadline);
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

  /** Calls `listener` once, with the reason, when the daemon closes the connection or lets a
   * request go unanswered (not after `dispose`). */
  onClose(listener: (reason: string) => void): void {
    this.closeListeners.push(listener);
  }

  /** Closes the connection; requests still waiting reject with `NotConnectedError`. */
  dispose(): void {
    this.closed = true;
    this.rpc.dispose();
    this.socket.destroy();
  }

  /** Closes the connection for `reason` and tells the `onClose` listeners. */
  private close(reason: string): void {
    if (this.closed) {
      return;
    }
    this.closeReason = reason;
    this.dispose(); // also rejects the requests waiting for an answer that will never come
    for (const listener of this.closeListeners) {
      listener(reason);
    }
  }
}
