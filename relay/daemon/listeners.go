package daemon

import (
	"errors"
	"net"
	"sync"
	"time"
)

// shared is a listening socket that outlives a config reload. Its one
// accept loop hands connections to whichever view asks: the servers of the
// current config, and briefly those of the previous one. Closing a view
// stops that server accepting without closing the socket, so a reload
// refuses no connection.
type shared struct {
	l     net.Listener
	conns chan net.Conn
	done  chan struct{} // closed when the socket is closed
	once  sync.Once
}

func share(l net.Listener) *shared {
	s := &shared{l: l, conns: make(chan net.Conn), done: make(chan struct{})}
	go s.accept()
	return s
}

func (s *shared) accept() {
	for {
		c, err := s.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				s.close()
				return
			}
			time.Sleep(50 * time.Millisecond) // out of file descriptors, say: retry
			continue
		}
		select {
		case s.conns <- c:
		case <-s.done:
			c.Close()
			return
		}
	}
}

func (s *shared) close() {
	s.once.Do(func() { close(s.done); s.l.Close() })
}

// view returns a listener fed by s until it is closed.
func (s *shared) view() net.Listener {
	return &view{s: s, closed: make(chan struct{})}
}

type view struct {
	s      *shared
	closed chan struct{}
	once   sync.Once
}

func (v *view) Accept() (net.Conn, error) {
	select {
	case <-v.closed:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-v.s.conns:
		return c, nil
	case <-v.closed:
		return nil, net.ErrClosed
	case <-v.s.done:
		return nil, net.ErrClosed
	}
}

func (v *view) Close() error {
	v.once.Do(func() { close(v.closed) })
	return nil
}

func (v *view) Addr() net.Addr { return v.s.l.Addr() }
