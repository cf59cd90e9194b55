package web

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// PlainToHTTPS wraps the page's listener, under TLS: a browser that came
// by http:// (the address typed without https) is sent to https://, with
// a line in French, instead of Go's "Client sent an HTTP request to an
// HTTPS server".
func PlainToHTTPS(l net.Listener) net.Listener { return plainListener{l} }

type plainListener struct{ net.Listener }

func (l plainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c, r: bufio.NewReaderSize(c, 4096)}, nil
}

// sniffConn looks at the first byte: a TLS handshake starts with 0x16.
type sniffConn struct {
	net.Conn
	r       *bufio.Reader
	checked bool
}

func (c *sniffConn) Read(p []byte) (int, error) {
	if !c.checked {
		c.checked = true
		if b, err := c.r.Peek(1); err == nil && b[0] != 0x16 {
			c.redirect()
			return 0, io.EOF
		}
	}
	return c.r.Read(p)
}

func (c *sniffConn) redirect() {
	c.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	host := c.Conn.LocalAddr().String()
	if req, err := http.ReadRequest(bufio.NewReader(io.LimitReader(c.r, 8<<10))); err == nil && req.Host != "" && !strings.ContainsAny(req.Host, "\r\n /\\") {
		host = req.Host
	}
	body := "Adresse à écrire avec https:// : https://" + host + "/\n"
	fmt.Fprintf(c.Conn, "HTTP/1.1 301 Moved Permanently\r\nLocation: https://%s/\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", host, len(body), body)
}
