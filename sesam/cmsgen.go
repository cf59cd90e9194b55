package sesam

import (
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
)

// The synthetic lots' CMS: structurally real (openssl reads it, SniffCMS
// judges it as it would a billing program's), cryptographically empty.
// Keys, IVs, signatures and ciphertext are random bytes, the recipient a
// made-up issuer and serial: nothing in it can be decrypted, and no care
// sheet was ever in it.

var (
	idData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	idSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	idEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	idRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	idAES256CBC     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	idSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
)

// RFC 5652 structures, only the fields the synthetic lots use.
type (
	contentInfo struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue // [0] EXPLICIT, built by hand: asn1 ignores "explicit" on a RawValue
	}
	issuerAndSerial struct {
		Issuer       asn1.RawValue
		SerialNumber *big.Int
	}
	keyTransRecipientInfo struct {
		Version                int
		RID                    issuerAndSerial
		KeyEncryptionAlgorithm pkix.AlgorithmIdentifier
		EncryptedKey           []byte
	}
	encryptedContentInfo struct {
		ContentType                asn1.ObjectIdentifier
		ContentEncryptionAlgorithm pkix.AlgorithmIdentifier
		EncryptedContent           []byte `asn1:"tag:0"` // [0] IMPLICIT OCTET STRING
	}
	envelopedData struct {
		Version              int
		RecipientInfos       []keyTransRecipientInfo `asn1:"set"`
		EncryptedContentInfo encryptedContentInfo
	}
	encapContentInfo struct {
		EContentType asn1.ObjectIdentifier
		EContent     []byte `asn1:"explicit,tag:0"`
	}
	signerInfo struct {
		Version            int
		SID                issuerAndSerial
		DigestAlgorithm    pkix.AlgorithmIdentifier
		SignatureAlgorithm pkix.AlgorithmIdentifier
		Signature          []byte
	}
	signedData struct {
		Version          int
		DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
		EncapContentInfo encapContentInfo
		SignerInfos      []signerInfo `asn1:"set"`
	}
)

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// madeUpCert names a certificate nobody holds: a fund's for enveloped
// lots, a practitioner's for signed ones.
func madeUpCert(cn string) issuerAndSerial {
	name, err := asn1.Marshal(pkix.Name{Country: []string{"FR"}, Organization: []string{"sesam-relay synthetic CA"}, CommonName: cn}.ToRDNSequence())
	if err != nil {
		panic(err) // fixed strings: cannot fail
	}
	return issuerAndSerial{Issuer: asn1.RawValue{FullBytes: name}, SerialNumber: new(big.Int).SetBytes(append([]byte{0x01}, random(8)...))}
}

func wrapContentInfo(t asn1.ObjectIdentifier, inner any) []byte {
	content, err := asn1.Marshal(inner)
	if err != nil {
		panic(err)
	}
	der, err := asn1.Marshal(contentInfo{ContentType: t, Content: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: content}})
	if err != nil {
		panic(err)
	}
	return der
}

// syntheticEnveloped is a DER ContentInfo of enveloped-data: version 0, one
// key-transport recipient (rsaEncryption, a random 2048-bit "encrypted
// key"), id-data content under aes256-CBC with a random IV, and n bytes of
// random "ciphertext" rounded up to the AES block.
func syntheticEnveloped(n int) []byte {
	iv, _ := asn1.Marshal(random(16))
	n = (n + 15) / 16 * 16
	return wrapContentInfo(idEnvelopedData, envelopedData{
		Version: 0,
		RecipientInfos: []keyTransRecipientInfo{{
			Version:                0,
			RID:                    madeUpCert("Caisse synthetique - chiffrement"),
			KeyEncryptionAlgorithm: pkix.AlgorithmIdentifier{Algorithm: idRSAEncryption, Parameters: asn1.NullRawValue},
			EncryptedKey:           random(256),
		}},
		EncryptedContentInfo: encryptedContentInfo{
			ContentType:                idData,
			ContentEncryptionAlgorithm: pkix.AlgorithmIdentifier{Algorithm: idAES256CBC, Parameters: asn1.RawValue{FullBytes: iv}},
			EncryptedContent:           random(n),
		},
	})
}

// syntheticSigned is a DER ContentInfo of signed-data carrying content in
// clear (readable by anyone: the point of a signed-only lot), with one
// signer (sha256, rsaEncryption, a random signature) and no certificate.
func syntheticSigned(content []byte) []byte {
	sha256 := pkix.AlgorithmIdentifier{Algorithm: idSHA256, Parameters: asn1.NullRawValue}
	return wrapContentInfo(idSignedData, signedData{
		Version:          1,
		DigestAlgorithms: []pkix.AlgorithmIdentifier{sha256},
		EncapContentInfo: encapContentInfo{EContentType: idData, EContent: content},
		SignerInfos: []signerInfo{{
			Version:            1,
			SID:                madeUpCert("Praticien synthetique - signature"),
			DigestAlgorithm:    sha256,
			SignatureAlgorithm: pkix.AlgorithmIdentifier{Algorithm: idRSAEncryption, Parameters: asn1.NullRawValue},
			Signature:          random(256),
		}},
	})
}
