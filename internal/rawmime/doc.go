// Package rawmime reads raw MIME as it comes off the wire, for parse and
// crypto alike: one header reader (go-message's, with a lenient reader
// where it refuses a damaged header), the split of header and body, media
// types, transfer encodings, multipart bodies split byte for byte, and the
// CRLF canonical form signatures cover. Pure: bytes in, values out.
package rawmime
