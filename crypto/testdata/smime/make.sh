#!/bin/sh
# Makes the S/MIME seeds of FuzzUnwrap with OpenSSL: a CA, the team's
# certificate (csirt@example.org), a partner's (cert@partner.example), and
# messages signed (detached and opaque) and encrypted (AES-CBC enveloped-data,
# AES-GCM authEnveloped-data, signed inside encrypted). Test material only.
set -e
cd "$(dirname "$0")"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj /CN=Seed-CA \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
for who in team:csirt@example.org partner:cert@partner.example; do
  n=${who%%:*}; e=${who#*:}
  openssl req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr -subj "/CN=$n/emailAddress=$e" 2>/dev/null
  printf 'subjectAltName=email:%s\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=emailProtection\n' $e > $n.ext
  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $n.pem -days 3650 -extfile $n.ext 2>/dev/null
  rm $n.csr $n.ext
done
rm -f ca.key ca.srl partner.key.bak
printf 'Content-Type: text/plain\r\n\r\nScan from 198.51.100.23.\r\n' > inner.txt
h="-from cert@partner.example -to csirt@example.org -subject Seed"
openssl cms -sign -signer partner.pem -inkey partner.key $h -in inner.txt -out signed.eml
openssl cms -sign -nodetach -signer partner.pem -inkey partner.key $h -in inner.txt -out opaque.eml
openssl cms -encrypt -aes-256-cbc $h -in inner.txt -out cbc.eml team.pem
openssl cms -encrypt -aes-256-gcm $h -in signed.eml -out gcm.eml team.pem
rm inner.txt partner.key
