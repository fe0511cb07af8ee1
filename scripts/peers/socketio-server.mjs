// Socket.IO 4.x server for scripts/bench-peers.sh: WebSocket transport only, no compression.
// A client joins a room with `sub(room, ack)`; `pub(room, data, ack)` broadcasts `m(data)` to the
// room (encoded once by Socket.IO's broadcast operator) and acknowledges. Loopback only.
// Usage: node socketio-server.mjs PORT   (prints "ready PORT" on stdout once listening)
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2] || 0);
const http = createServer();
const io = new Server(http, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
  cors: { origin: false },
});

io.on('connection', (socket) => {
  socket.on('sub', (room, ack) => {
    if (typeof room === 'string') socket.join(room);
    if (typeof ack === 'function') ack();
  });
  socket.on('pub', (room, data, ack) => {
    if (typeof room === 'string') io.to(room).emit('m', data);
    if (typeof ack === 'function') ack();
  });
});

http.listen(port, '127.0.0.1', () => {
  console.log(`ready ${http.address().port}`);
});
const stop = () => io.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
