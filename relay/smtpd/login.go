package smtpd

import (
	"errors"

	"github.com/emersion/go-sasl"
)

// loginServer is the server side of the obsolete but widespread SASL LOGIN
// mechanism, which old billing software uses. go-sasl has only the client.
type loginServer struct {
	user  string
	step  int
	check func(user, pass string) error
}

func newLoginServer(check func(user, pass string) error) sasl.Server {
	return &loginServer{check: check}
}

func (a *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch a.step {
	case 0:
		a.step = 1
		if len(response) == 0 { // no initial response
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		a.user = string(response)
		a.step = 2
		return []byte("Password:"), false, nil
	case 2:
		a.step = 3
		return nil, true, a.check(a.user, string(response))
	}
	return nil, false, errors.New("unexpected LOGIN response")
}
