// Server-Sent Events read with fetch(), so that the request can carry `Authorization` (EventSource
// cannot send headers, and a token must never be in a URL). It behaves as EventSource does: `open`,
// named events with `data` and `lastEventId`, `error`; on a dropped connection it reconnects after the
// server's `retry:` time, sending Last-Event-ID itself; an answer that is not a 200 event stream closes
// it for good (readyState CLOSED).
import { authHeaders } from './auth.js';

export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSED = 2;

export class FetchEventSource {
  constructor(url) {
    this.url = url;
    this.readyState = CONNECTING;
    this.lastEventId = '';
    this.onopen = null;
    this.onerror = null;
    this.listeners = new Map();
    this.retryMillis = 3000;
    this.controller = null;
    this.timer = 0;
    void this.connect();
  }

  addEventListener(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(listener);
  }

  close() {
    this.readyState = CLOSED;
    clearTimeout(this.timer);
    this.controller?.abort();
  }

  async connect() {
    const controller = new AbortController();
    this.controller = controller;
    const headers = authHeaders({ accept: 'text/event-stream' });
    if (this.lastEventId) headers['last-event-id'] = this.lastEventId;
    let res;
    try {
      res = await fetch(this.url, { headers, signal: controller.signal, cache: 'no-store' });
    } catch {
      return this.dropped();
    }
    if (this.readyState === CLOSED) return undefined;
    if (!res.ok || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      controller.abort();
      this.readyState = CLOSED;
      return this.onerror?.();
    }
    this.readyState = OPEN;
    this.onopen?.();
    try {
      await this.read(res.body.pipeThrough(new TextDecoderStream()).getReader());
    } catch {
      // the connection dropped: reconnect below
    }
    return this.dropped();
  }

  dropped() {
    if (this.readyState === CLOSED) return;
    this.readyState = CONNECTING;
    this.onerror?.();
    if (this.readyState === CLOSED) return;
    this.timer = setTimeout(() => void this.connect(), this.retryMillis);
  }

  async read(reader) {
    let buffer = '';
    let message = { event: '', data: [], id: undefined };
    for (;;) {
      const { done, value } = await reader.read();
      if (done || this.readyState === CLOSED) return;
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === '') {
          if (message.id !== undefined) this.lastEventId = message.id;
          if (message.data.length > 0) this.dispatch(message.event || 'message', message.data.join('\n'));
          message = { event: '', data: [], id: undefined };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') message.event = text;
        else if (field === 'data') message.data.push(text);
        else if (field === 'id' && !text.includes('\0')) message.id = text;
        else if (field === 'retry' && /^\d+$/.test(text)) this.retryMillis = Number(text);
      }
    }
  }

  dispatch(type, data) {
    const event = { type, data, lastEventId: this.lastEventId };
    for (const listener of this.listeners.get(type) ?? []) {
      if (this.readyState === CLOSED) return;
      listener(event);
    }
  }
}
