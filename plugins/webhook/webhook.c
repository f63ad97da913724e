/*
 * webhook.c - the `webhook` notifier: POST each notification as JSON.
 *
 *   notifiers:
 *     - name: hook
 *       plugin: webhook
 *       url: https://hooks.example.net/dmarc   # plain, or url: env:NAME, or url_file: PATH
 *       secret_file: /etc/dmarcwatch/hook.key  # optional: or secret: env:NAME
 *       header: ["X-Team: mail"]               # optional extra "Name: value" lines
 *       include_attachment: true               # default true
 *       ca_file: /etc/ssl/private-ca.pem       # optional; verify: true (default)
 *
 * THE REQUEST
 *   POST <url>, HTTP/1.1 or 2, no redirects followed, bounded by the
 *   notifier's timeout. The body is the notification's JSON form
 *   (include/dw/notification_json.h, README "Notification JSON"):
 *   {"schema": "dmarcwatch.notification/1", "kind": ..., "severity": ...,
 *   "time": ..., "idempotency_key": ..., "attempt": N, "title": ..., ...}
 *   with the attachment's bytes in attachment.data_base64 unless
 *   include_attachment is false (then filename, media_type and size only).
 *   Headers:
 *     Content-Type: application/json
 *     User-Agent: dmarcwatch/VERSION
 *     X-Dmarcwatch-Idempotency-Key: KEY   the same on every retry of one
 *                                         notification: de-duplicate on it
 *     X-Dmarcwatch-Timestamp: UNIX        seconds, when this attempt was sent
 *     X-Dmarcwatch-Signature: sha256=HEX  only with a secret (below)
 *     plus every `header` line, in order.
 *   The configured headers may not replace these (nor Host, Content-Length,
 *   Transfer-Encoding, Expect).
 *
 * THE SIGNATURE
 *   HEX = lower-case hex of HMAC-SHA256(key = the secret's bytes, message =
 *   TIMESTAMP + "." + the raw request body), TIMESTAMP being the
 *   X-Dmarcwatch-Timestamp header's text. To verify, a receiver:
 *     1. reads the raw body bytes (before any JSON parsing),
 *     2. computes the HMAC over timestamp + "." + body and compares it with
 *        the header in constant time,
 *     3. refuses timestamps more than a few minutes from its clock (replay),
 *     4. de-duplicates on X-Dmarcwatch-Idempotency-Key (delivery is at
 *        least once; each retry is signed anew, and "attempt" changes).
 *   In Python:
 *     mac = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256)
 *     ok = hmac.compare_digest("sha256=" + mac.hexdigest(), signature)
 *
 * SECRETS
 *   `secret` only comes from secret_file or secret: env:NAME. The URL may
 *   be given plainly (url: https://...) or, when it embeds a token (Slack-
 *   style hooks), through url_file or url: env:NAME, which registers it as a
 *   secret: the agent masks it in its logs. A plain URL with a user:password
 *   part is refused. Either way the URL never appears in messages.
 *
 * OUTCOMES (pu_http_outcome): 2xx delivered; 408, 425, 429, 5xx and
 * network errors are retried (Retry-After honoured); other statuses,
 * certificate errors and bad URLs are permanent failures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "dw/notification_json.h"
#include "pu_curl.h"

struct wh {
	const struct dw_host *host;
	char *url;           /* plain or secret */
	int url_secret;      /* url came from host->secret() */
	char *secret;        /* or NULL */
	struct curl_slist *extra; /* configured header lines */
	struct pu_tls tls;
	int include_attachment;
};

static const char *const known_keys[] = {"url",    "url_file", "secret",  "secret_file", "header",
                                         "include_attachment", "ca_file", "verify", NULL};

/* Header names the plugin sets itself (or curl must own). */
static const char *const reserved[] = {"content-type", "content-length", "host", "transfer-encoding",
                                       "expect", "user-agent", NULL};

static void
wh_shutdown(void *state)
{
	struct wh *w = state;
	if (w == NULL)
		return;
	if (w->url_secret)
		pu_secret_free(w->url);
	else
		free(w->url);
	pu_secret_free(w->secret);
	curl_slist_free_all(w->extra);
	free(w);
	curl_global_cleanup();
}

/* "Name: value" with a token name, no CR/LF, not one we set. */
static int
check_header(const struct dw_host *host, const struct dw_kv *kv)
{
	const char *v = kv->value, *colon = strchr(v, ':');
	static const char tchar[] = "!#$%&'*+-.^_`|~";
	size_t n = colon != NULL ? (size_t)(colon - v) : 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr(tchar, c) != NULL)) {
			n = 0;
			break;
		}
	}
	if (n == 0) {
		host->config_error(host, kv, "expected \"Name: value\" with an HTTP header name before the colon");
		return -1;
	}
	if (strpbrk(v, "\r\n") != NULL) {
		host->config_error(host, kv, "a header line may not contain a line break");
		return -1;
	}
	for (size_t i = 0; reserved[i] != NULL; i++) {
		if (strlen(reserved[i]) == n && strncasecmp(v, reserved[i], n) == 0) {
			host->config_error(host, kv, "%.*s is set by the plugin; it cannot be configured", (int)n, v);
			return -1;
		}
	}
	if (n > 12 && strncasecmp(v, "x-dmarcwatch-", 13) == 0) {
		host->config_error(host, kv, "X-Dmarcwatch-* headers are set by the plugin; use another name");
		return -1;
	}
	return 0;
}

/* http(s)://..., no spaces or control characters, no user:password unless
 * the URL is a secret. Messages never quote the value (it may be a secret). */
static int
check_url(const struct dw_host *host, const struct dw_kv *kv, const char *url, int secret)
{
	size_t skip = strncasecmp(url, "https://", 8) == 0 ? 8 : strncasecmp(url, "http://", 7) == 0 ? 7 : 0;
	const char *bad = NULL;
	if (skip == 0 || url[skip] == '\0' || url[skip] == '/')
		bad = "expected an http:// or https:// URL with a host";
	for (const unsigned char *p = (const unsigned char *)url; bad == NULL && *p != '\0'; p++)
		if (*p <= ' ' || *p == 0x7f)
			bad = "the URL contains a space or a control character";
	if (bad == NULL && !secret) {
		size_t auth = strcspn(url + skip, "/?#");
		if (memchr(url + skip, '@', auth) != NULL)
			bad = "the URL carries a user name or password: give it with url_file or url: env:NAME";
	}
	if (bad == NULL)
		return 0;
	host->config_error(host, kv, "%s%s", secret ? "the URL it gives: " : "", bad);
	return -1;
}

static int
wh_init(const struct dw_host *host, const struct dw_kv *cfg, size_t ncfg, void **state, char *err,
        size_t errlen)
{
	if (pu_check_keys(host, cfg, ncfg, known_keys) != 0)
		return -1;
	static const char *const single[] = {"url", "url_file", "secret", "secret_file", NULL};
	for (size_t i = 0; single[i] != NULL; i++)
		if (pu_single(host, cfg, ncfg, single[i]) != 0)
			return -1;
	struct wh *w = calloc(1, sizeof *w);
	if (w == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w->host = host;
	w->include_attachment = 1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(w);
		snprintf(err, errlen, "libcurl initialisation failed");
		return -1;
	}
	int bad = 0;
	const struct dw_kv *url = pu_kv(cfg, ncfg, "url"), *url_file = pu_kv(cfg, ncfg, "url_file");
	if (url != NULL && url_file != NULL) {
		host->config_error(host, url_file, "give url or url_file, not both");
		bad = -1;
	} else if (url_file != NULL || (url != NULL && strncmp(url->value, "env:", 4) == 0)) {
		int r = host->secret(host, "url", &w->url);
		w->url_secret = 1;
		if (r < 0)
			bad = -1;
		else if (r == 0 || w->url == NULL) {
			snprintf(err, errlen, "url: not found (url_file or url: env:NAME gave nothing)");
			bad = -1;
		} else if (check_url(host, url_file != NULL ? url_file : url, w->url, 1) != 0)
			bad = -1;
	} else if (url != NULL) {
		if (check_url(host, url, url->value, 0) != 0)
			bad = -1;
		else if ((w->url = strdup(url->value)) == NULL) {
			snprintf(err, errlen, "out of memory");
			bad = -1;
		}
	} else {
		snprintf(err, errlen, "url: required (url: https://..., url: env:NAME or url_file: PATH)");
		bad = -1;
	}
	if (host->secret(host, "secret", &w->secret) < 0)
		bad = -1;
	else if (w->secret != NULL && w->secret[0] == '\0') {
		host->config_error(host, NULL, "secret: the signing secret is empty");
		bad = -1;
	}
	for (size_t i = 0; i < ncfg; i++) {
		if (strcmp(cfg[i].key, "header") != 0)
			continue;
		if (check_header(host, &cfg[i]) != 0) {
			bad = -1;
			continue;
		}
		if (pu_curl_header(&w->extra, cfg[i].value) != 0) {
			snprintf(err, errlen, "out of memory");
			bad = -1;
			break;
		}
	}
	if (pu_bool(host, cfg, ncfg, "include_attachment", &w->include_attachment) != 0)
		bad = -1;
	if (pu_tls_config(host, cfg, ncfg, &w->tls) != 0)
		bad = -1;
	if (bad != 0) {
		wh_shutdown(w);
		return -1;
	}
	*state = w;
	return 0;
}

/* "sha256=" + hex HMAC-SHA256(secret, ts "." body) into out (72 bytes). */
static int
sign(const char *secret, const char *ts, const char *body, size_t bodylen, char out[72])
{
	unsigned char mac[32];
	gnutls_hmac_hd_t h;
	if (gnutls_hmac_init(&h, GNUTLS_MAC_SHA256, secret, strlen(secret)) < 0)
		return -1;
	int bad = gnutls_hmac(h, ts, strlen(ts)) < 0;
	bad |= gnutls_hmac(h, ".", 1) < 0;
	bad |= gnutls_hmac(h, body, bodylen) < 0;
	gnutls_hmac_deinit(h, mac);
	if (bad)
		return -1;
	memcpy(out, "sha256=", 7);
	for (size_t i = 0; i < sizeof mac; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", mac[i]);
	return 0;
}

static int
wh_notify(void *state, const struct dw_notification *n, unsigned *retry_after, char *err, size_t errlen)
{
	struct wh *w = state;
	const struct dw_host *host = w->host;
	char errbuf[CURL_ERROR_SIZE], line[320], sig[72];
	struct pu_buf resp = {0};
	struct curl_slist *hdrs = NULL;
	int rc = DW_NOTIFY_RETRY;

	char *body = dw_notification_to_json(n, w->include_attachment ? 0 : DW_NJ_NO_ATTACHMENT_DATA);
	CURL *h = curl_easy_init();
	if (body == NULL || h == NULL) {
		snprintf(err, errlen, "webhook: out of memory while preparing the request");
		goto out;
	}
	char ts[24];
	snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
	/* The key is the agent's, but keep the header line clean whatever it is. */
	char key[256];
	const char *ik = n->idempotency_key != NULL ? n->idempotency_key : "";
	size_t k = 0;
	for (; ik[k] != '\0' && k + 1 < sizeof key; k++)
		key[k] = ik[k] >= 0x20 && ik[k] < 0x7f ? ik[k] : '_';
	key[k] = '\0';

	int bad = pu_curl_header(&hdrs, "Content-Type: application/json") | pu_curl_header(&hdrs, "Expect:");
	snprintf(line, sizeof line, "X-Dmarcwatch-Idempotency-Key: %s", key);
	bad |= pu_curl_header(&hdrs, line);
	snprintf(line, sizeof line, "X-Dmarcwatch-Timestamp: %s", ts);
	bad |= pu_curl_header(&hdrs, line);
	if (w->secret != NULL) {
		if (sign(w->secret, ts, body, strlen(body), sig) != 0) {
			snprintf(err, errlen, "webhook: computing the HMAC-SHA256 signature failed (gnutls)");
			goto out;
		}
		snprintf(line, sizeof line, "X-Dmarcwatch-Signature: %s", sig);
		bad |= pu_curl_header(&hdrs, line);
	}
	for (const struct curl_slist *e = w->extra; e != NULL; e = e->next)
		bad |= pu_curl_header(&hdrs, e->data);
	if (bad) {
		snprintf(err, errlen, "webhook: out of memory while preparing the request");
		goto out;
	}

	if (pu_curl_setup(h, host, &w->tls, "http,https", errbuf) != 0 ||
	    curl_easy_setopt(h, CURLOPT_URL, w->url) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body)) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, pu_curl_write) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp) != CURLE_OK) {
		snprintf(err, errlen, "webhook: setting up libcurl failed (is libcurl older than 7.85?)");
		rc = DW_NOTIFY_FAIL;
		goto out;
	}
	CURLcode cc = curl_easy_perform(h);
	rc = pu_http_outcome(h, cc, errbuf, &resp, "webhook POST", retry_after, err, errlen);
out:
	if (h != NULL)
		curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	pu_buf_free(&resp);
	free(body);
	return rc;
}

DW_NOTIFIER_EXPORT const struct dw_notifier dw_notifier_entry =
    DW_NOTIFIER_INIT(.name = "webhook", .version = "1.0",
                     .description = "POST the notification as signed JSON to an HTTP(S) endpoint",
                     .init = wh_init, .notify = wh_notify, .shutdown = wh_shutdown);
