# Smart HTTP for tests and benchmarks: `git http-backend` behind a tiny loopback CGI server.
# Usage: python3 http_backend.py ROOT GIT_HTTP_BACKEND [--v0]. Prints the port it listens on,
# then serves until killed. With --v0 the Git-Protocol header is dropped, so the server speaks
# protocol v0 (which serves no commit by id): the tests use that to reach checkout's fallback.
import http.server, os, subprocess, sys
root, backend = sys.argv[1], sys.argv[2]
v0 = '--v0' in sys.argv[3:]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self): self.run()
    def do_POST(self): self.run()
    def run(self):
        path, _, query = self.path.partition('?')
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL='1', PATH_INFO=path,
                   QUERY_STRING=query, REQUEST_METHOD=self.command,
                   CONTENT_TYPE=self.headers.get('Content-Type', ''), REMOTE_ADDR='127.0.0.1')
        if self.headers.get('Git-Protocol') and not v0:
            env['GIT_PROTOCOL'] = self.headers['Git-Protocol']
        n = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(n) if n else b''
        if self.headers.get('Content-Encoding') == 'gzip':
            env['HTTP_CONTENT_ENCODING'] = 'gzip'
        env['CONTENT_LENGTH'] = str(len(body))
        out = subprocess.run([backend], input=body, env=env, capture_output=True).stdout
        head, _, rest = out.partition(b'\r\n\r\n')
        status, headers = 200, []
        for line in head.split(b'\r\n'):
            k, _, v = line.decode().partition(': ')
            if k.lower() == 'status': status = int(v.split()[0])
            elif k: headers.append((k, v))
        self.send_response(status)
        for k, v in headers: self.send_header(k, v)
        self.send_header('Content-Length', str(len(rest)))
        self.end_headers(); self.wfile.write(rest)
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
