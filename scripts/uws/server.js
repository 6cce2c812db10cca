// uWebSockets.js control server for scripts/compare-uws.sh, speaking the two protocols the
// loadgen measures:
//   /ws/<room>/  room-per-URL: joins <room>; every text message is published to the room
//                (sender included), as shardcast's room-per-URL endpoint does.
//   /ws          the multiplexed protocol's benchmark subset (DESIGN.md §3): `sub`, `unsub`,
//                `pub`, `ping`, with the same envelope and replies byte for byte —
//                {"room":R,"seq":N,"data":D}, {"op":"ok","id":I,"room":R,"seq":N,"epoch":E},
//                {"op":"pong","id":I}, {"op":"error",..}. Per-room seq from 1, one fixed
//                epoch, no history, no auth: a control for throughput and latency, not a
//                second implementation of the contract.
// Usage: node server.js [PORT]   (0 or none = a free port); prints "listening on 127.0.0.1:PORT"
// once it accepts, like shardcast, so scripts can parse the address instead of fixing ports.
const uWS = require('uwebsockets');
const port = parseInt(process.argv[2] || '0', 10);
const app = uWS.App();
const opts = { compression: 0, maxPayloadLength: 64 * 1024, maxBackpressure: 1024 * 1024, idleTimeout: 0 };
const EPOCH = 'uws0000000';
const seqs = new Map(); // room -> last seq

function reply(ws, op, id, rest) {
  const idPart = id === undefined ? '' : ',"id":' + JSON.stringify(id);
  ws.send('{"op":"' + op + '"' + idPart + rest + '}', false);
}
function error(ws, id, code, message) {
  reply(ws, 'error', id, ',"code":"' + code + '","message":' + JSON.stringify(message));
}

app.ws('/ws', {
  ...opts,
  message: (ws, msg) => {
    let m;
    try { m = JSON.parse(Buffer.from(msg).toString()); } catch (e) { return error(ws, undefined, 'bad_json', 'not JSON'); }
    if (m === null || typeof m !== 'object') return error(ws, undefined, 'bad_json', 'not an object');
    const room = m.room;
    if (m.op === 'ping') return reply(ws, 'pong', m.id, '');
    if (typeof room !== 'string' || room.length === 0) return error(ws, m.id, 'missing_field', 'room');
    const r = JSON.stringify(room);
    switch (m.op) {
      case 'sub':
        ws.subscribe(room);
        return reply(ws, 'ok', m.id, ',"room":' + r + ',"seq":' + (seqs.get(room) || 0) + ',"epoch":"' + EPOCH + '"');
      case 'unsub':
        ws.unsubscribe(room);
        return reply(ws, 'ok', m.id, ',"room":' + r);
      case 'pub': {
        if (m.data === undefined) return error(ws, m.id, 'missing_field', 'data');
        const seq = (seqs.get(room) || 0) + 1;
        seqs.set(room, seq);
        app.publish(room, '{"room":' + r + ',"seq":' + seq + ',"data":' + JSON.stringify(m.data) + '}', false);
        return reply(ws, 'ok', m.id, ',"room":' + r + ',"seq":' + seq + ',"epoch":"' + EPOCH + '"');
      }
      default:
        return error(ws, m.id, 'bad_op', 'unknown op');
    }
  },
}).ws('/ws/*', {
  ...opts,
  upgrade: (res, req, ctx) => {
    const room = req.getUrl().slice(4).replace(/\/$/, '');
    res.upgrade({ room }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'), ctx);
  },
  open: (ws) => { ws.subscribe(ws.getUserData().room); },
  message: (ws, msg, isBinary) => { app.publish(ws.getUserData().room, msg, isBinary); },
}).listen('127.0.0.1', port, (t) => {
  if (!t) process.exit(1);
  console.log('listening on 127.0.0.1:' + uWS.us_socket_local_port(t));
});
