package netvisor

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

// sign sets the authentication headers on h for a request to url (the full
// URL including the query, exactly as sent).
//
// SHA256: MAC = hex(SHA256(URL&Sender&CustomerId&Timestamp&Language&
// OrganisationId&TransactionId&CustomerKey&PartnerKey)).
// HMACSHA256: MAC = hex(HMAC-SHA256(key CustomerKey&PartnerKey, URL&Sender&
// CustomerId&Timestamp&Language&OrganisationId&TransactionId&TimestampUnix&
// CustomerKey&PartnerKey)), with TimestampUnix and
// UseHTTPResponseStatusCodes headers added. The MAC input is encoded as
// ISO-8859-1. PartnerId is sent but is not part of either MAC.
//
// The field order comes from two independent third-party clients (the
// official page only says "all the information listed"); it matches the
// legacy MD5 order.
func (c *Client) sign(h http.Header, url string) {
	now := c.now().UTC()
	ts := now.Format("2006-01-02 15:04:05.000")
	tx := c.txID()
	cfg := c.cfg
	h.Set("X-Netvisor-Authentication-Sender", cfg.Sender)
	h.Set("X-Netvisor-Authentication-CustomerId", cfg.CustomerID)
	h.Set("X-Netvisor-Authentication-PartnerId", cfg.PartnerID)
	h.Set("X-Netvisor-Authentication-Timestamp", ts)
	h.Set("X-Netvisor-Authentication-TransactionId", tx)
	h.Set("X-Netvisor-Interface-Language", cfg.Language)
	h.Set("X-Netvisor-Organisation-ID", cfg.OrganisationID)
	h.Set("X-Netvisor-Authentication-MACHashCalculationAlgorithm", cfg.Algorithm)
	fields := []string{url, cfg.Sender, cfg.CustomerID, ts, cfg.Language, cfg.OrganisationID, tx}
	var sum []byte
	if cfg.Algorithm == AlgorithmHMACSHA256 {
		unix := strconv.FormatInt(now.Unix(), 10)
		h.Set("X-Netvisor-Authentication-TimestampUnix", unix)
		h.Set("X-Netvisor-Authentication-UseHTTPResponseStatusCodes", "1")
		fields = append(fields, unix, cfg.CustomerKey, cfg.PartnerKey)
		m := hmac.New(sha256.New, latin1(cfg.CustomerKey+"&"+cfg.PartnerKey))
		m.Write(latin1(strings.Join(fields, "&")))
		sum = m.Sum(nil)
	} else {
		fields = append(fields, cfg.CustomerKey, cfg.PartnerKey)
		s := sha256.Sum256(latin1(strings.Join(fields, "&")))
		sum = s[:]
	}
	h.Set("X-Netvisor-Authentication-MAC", hex.EncodeToString(sum))
}

// latin1 encodes s as ISO-8859-1, '?' for characters it cannot hold. Header
// fields are ASCII (Validate checks), so only unusual keys are affected.
func latin1(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r < 256 {
			out = append(out, byte(r))
		} else {
			out = append(out, '?')
		}
	}
	return out
}
