// A y-websocket client under Node for the interop tests, driven by JSON lines.
//
// It is the stock `WebsocketProvider` of the `y-websocket` package with a stock `yjs` Doc,
// exactly as a Node or browser app would use them; the only additions are observation taps:
// the WebSocket class handed to the provider (`WebSocketPolyfill`) is `ws` with a tap that
// reports every frame in and out, and the provider's handler of auth messages also reports
// the permission-denied reason (the stock one only writes it to the console).
//
// stdin, one JSON object a line (an optional "id" is echoed in the reply `{"event":"ok"}`):
//   {"cmd":"connect","url":"ws://127.0.0.1:PORT/yjs","room":"CUSTOMER_ID","params":{"token":"…"}}
//   {"cmd":"set","key":"city","value":"Oslo"}       fields Map
//   {"cmd":"insertNote","index":0,"text":"…"}       notes Text ("index": -1 = at the end)
//   {"cmd":"deleteNote","index":0,"length":3}
//   {"cmd":"awareness","state":{…}}                 the whole local state (null: none)
//   {"cmd":"queryAwareness"}                         sends a raw query-awareness message
//   {"cmd":"authMessage","token":"…"}                sends a raw auth message [2, 1, token]
//   {"cmd":"dump"}                                   -> {"event":"dump", …}
//   {"cmd":"disconnect"}  {"cmd":"reconnect"}  {"cmd":"exit"}
// stdout, one JSON object a line ("event" says which):
//   ready, ok, error, status, synced, connection-close, closed, connection-error,
//   permission-denied, frame (dir in/out, kind, for updates the clock ranges per client),
//   update (origin local/remote, with the fields and notes after it), awareness, dump.

import { createInterface } from 'node:readline'
import process from 'node:process'

import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import WebSocket from 'ws'
import * as authProtocol from 'y-protocols/auth'
import { WebsocketProvider, messageAuth } from 'y-websocket'
import * as Y from 'yjs'

const doc = new Y.Doc()
const fields = doc.getMap('fields')
const notes = doc.getText('notes')
let provider = null

const emit = (event, data = {}) => {
  process.stdout.write(JSON.stringify({ event, ...data }) + '\n')
}

const rangesOf = (update) => {
  const meta = Y.parseUpdateMeta(update)
  const ranges = {}
  for (const [client, to] of meta.to) {
    ranges[String(client)] = [meta.from.get(client) ?? 0, to]
  }
  return ranges
}

const SYNC_KINDS = ['sync-step1', 'sync-step2', 'sync-update']

// Decodes one y-websocket frame into a small description (never throws).
const describe = (data) => {
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data)
  const out = { bytes: bytes.length }
  try {
    const decoder = decoding.createDecoder(bytes)
    const type = decoding.readVarUint(decoder)
    if (type === 0) {
      const sub = decoding.readVarUint(decoder)
      out.kind = SYNC_KINDS[sub] ?? `sync-${sub}`
      const payload = decoding.readVarUint8Array(decoder)
      if (sub === 0) {
        out.sv = Object.fromEntries(
          [...Y.decodeStateVector(payload)].map(([c, k]) => [String(c), k]))
      } else {
        out.ranges = rangesOf(payload)
        out.own = Object.hasOwn(out.ranges, String(doc.clientID))
      }
    } else if (type === 1) {
      out.kind = 'awareness'
      const inner = decoding.createDecoder(decoding.readVarUint8Array(decoder))
      out.states = {}
      for (let n = decoding.readVarUint(inner); n > 0; n--) {
        const client = decoding.readVarUint(inner)
        decoding.readVarUint(inner) // clock
        out.states[String(client)] = JSON.parse(decoding.readVarString(inner))
      }
    } else if (type === 2) {
      out.kind = 'auth'
      const sub = decoding.readVarUint(decoder)
      out.auth = sub
      if (sub === authProtocol.messagePermissionDenied) {
        out.reason = decoding.readVarString(decoder)
      }
    } else if (type === 3) {
      out.kind = 'query-awareness'
    } else {
      out.kind = `unknown-${type}`
    }
  } catch (err) {
    out.kind = 'undecodable'
    out.error = String(err)
  }
  return out
}

// `ws` with a tap on every frame: what the provider uses as its WebSocket.
class TappedWebSocket extends WebSocket {
  constructor (url, protocols) {
    super(url, protocols)
    this.addEventListener('message', (event) => {
      emit('frame', { dir: 'in', ...describe(event.data) })
    })
  }

  send (data, ...rest) {
    emit('frame', { dir: 'out', ...describe(data) })
    return super.send(data, ...rest)
  }
}

const snapshot = () => ({
  clientID: doc.clientID,
  clock: Y.getState(doc.store, doc.clientID),
  fields: fields.toJSON(),
  notes: notes.toString(),
  synced: provider?.synced ?? false,
  connected: provider?.wsconnected ?? false,
  shouldConnect: provider?.shouldConnect ?? false
})

doc.on('update', (update, origin) => {
  emit('update', {
    origin: origin === provider && provider !== null ? 'remote' : 'local',
    ranges: rangesOf(update),
    ...snapshot()
  })
})

const awarenessStates = () => Object.fromEntries(
  [...provider.awareness.getStates()].map(([client, state]) => [String(client), state]))

const connect = ({ url, room, params = {} }) => {
  if (provider !== null) throw new Error('already connected')
  provider = new WebsocketProvider(url, room, doc, {
    params, WebSocketPolyfill: TappedWebSocket, disableBc: true
  })
  provider.messageHandlers[messageAuth] = (_encoder, decoder, prov) => {
    authProtocol.readAuthMessage(decoder, prov.doc, (_doc, reason) => {
      emit('permission-denied', { reason })
    })
  }
  provider.on('status', ({ status }) => emit('status', { status }))
  provider.on('sync', (synced) => emit('synced', { synced, ...snapshot() }))
  provider.on('connection-close', (event) => {
    emit('connection-close', event === null
      ? { local: true }
      : { local: false, code: event.code, reason: String(event.reason ?? '') })
  })
  provider.on('closed', ({ code, reason }) => emit('closed', { code, reason: String(reason) }))
  provider.on('connection-error', (event) => {
    emit('connection-error', { message: String(event?.message ?? event?.error ?? event) })
  })
  provider.awareness.on('change', ({ added, updated, removed }, origin) => {
    emit('awareness', {
      origin: origin === 'local' ? 'local' : 'remote',
      added,
      updated,
      removed,
      states: awarenessStates()
    })
  })
}

const commands = {
  connect,
  set: ({ key, value }) => { fields.set(key, value) },
  delete: ({ key }) => { fields.delete(key) },
  insertNote: ({ index, text }) => {
    notes.insert(index < 0 ? notes.length : index, text)
  },
  deleteNote: ({ index, length }) => { notes.delete(index, length) },
  awareness: ({ state }) => { provider.awareness.setLocalState(state ?? null) },
  queryAwareness: () => {
    // The stock provider never asks the server; this is the raw y-protocols message.
    provider.ws.send(Uint8Array.of(3))
  },
  authMessage: ({ token }) => {
    // The server's other way in: [messageAuth, 1, token] on the open socket.
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, messageAuth)
    encoding.writeVarUint(encoder, 1)
    encoding.writeVarString(encoder, token)
    provider.ws.send(encoding.toUint8Array(encoder))
  },
  dump: (msg) => {
    emit('dump', { id: msg.id, ...snapshot(), awareness: provider ? awarenessStates() : {} })
  },
  disconnect: () => { provider?.disconnect() },
  reconnect: () => { provider.connect() },
  exit: () => {
    provider?.destroy()
    process.exit(0)
  }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  if (!line.trim()) return
  let msg = null
  try {
    msg = JSON.parse(line)
    const run = commands[msg.cmd]
    if (run === undefined) throw new Error(`unknown command ${msg.cmd}`)
    run(msg)
    emit('ok', { id: msg.id ?? null, cmd: msg.cmd })
  } catch (err) {
    emit('error', { id: msg?.id ?? null, message: String(err?.stack ?? err) })
  }
})
lines.on('close', () => {
  provider?.destroy()
  process.exit(0)
})
process.on('uncaughtException', (err) => {
  emit('error', { id: null, message: `uncaught: ${err?.stack ?? err}` })
})

emit('ready', { clientID: doc.clientID, node: process.version })
