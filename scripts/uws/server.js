// uWebSockets.js room-per-URL pub/sub, the same protocol as the baseline: /ws/<room>/ joins
// <room>; every text message is published to the room (sender included).
// Usage: node server.js [PORT]   (0 or none = a free port); prints "listening on 127.0.0.1:PORT"
// once it accepts, like shardcast, so scripts can parse the address instead of fixing ports.
const uWS = require('uwebsockets');
const port = parseInt(process.argv[2] || '0', 10);
const app = uWS.App();
app.ws('/ws/*', {
  compression: 0, maxPayloadLength: 64 * 1024, maxBackpressure: 1024 * 1024, idleTimeout: 0,
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
