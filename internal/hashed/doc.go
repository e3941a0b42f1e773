// Package hashed reads files of names and password or token hashes, one
// "NAME HASH" per line, and checks secrets against them. It serves the
// staff submission listener's credentials and the staff API's tokens, so
// both accept the same hash forms and check them the same way:
//
//	NAME $2y$10$...                                 bcrypt
//	NAME $argon2id$v=19$m=65536,t=3,p=4$SALT$HASH    argon2id (PHC string)
//	NAME sha256:HEX                                 SHA-256, for random tokens only
//
// In a token file a bcrypt or argon2id line carries a third field, the
// token's identifier: its first characters (at least minIDLen), so that a
// presented token is checked against its own line alone and a wrong one
// costs one hash, however many lines there are:
//
//	NAME $2y$10$... mdg_AbCdEf12
//
// Lines starting with # and blank lines are ignored.
package hashed
