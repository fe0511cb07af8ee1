// Minimal proxy backend for scripts/bench-proxy.sh: POST /rpc echoes the call's data, POST
// /subscribe allows. One Node process: `node backend.cjs PORT`.
const http = require("http");

http
  .createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      let body = "{}";
      if (req.url === "/rpc") {
        const call = JSON.parse(Buffer.concat(chunks).toString() || "{}");
        body = JSON.stringify({ result: { data: { echo: call.data ?? null } } });
      } else if (req.url === "/subscribe") {
        body = '{"result":{}}';
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(body);
    });
  })
  .listen(Number(process.argv[2]), "127.0.0.1");
