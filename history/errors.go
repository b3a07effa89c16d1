package history

import "errors"

// ErrMalformed is wrapped by every error that blames the content of a
// history (a line that does not parse, an op that does not pair, a value
// of the wrong shape), as opposed to an I/O failure. Callers use it to tell
// bad input from internal errors.
var ErrMalformed = errors.New("malformed history")

// MarshalJSON encodes op as one history line (without the newline).
func (op Op) MarshalJSON() ([]byte, error) {
	return AppendJSON(nil, &op), nil
}

// UnmarshalJSON decodes op from one history line's JSON object.
func (op *Op) UnmarshalJSON(b []byte) error {
	o, err := ParseJSON(b)
	if err != nil {
		return err
	}
	*op = o
	return nil
}
