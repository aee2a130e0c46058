/* SPDX-License-Identifier: Apache-2.0 */
/* The client side of the WebSocket opening handshake (RFC 6455 section 4). */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "hd_base64.h"
#include "hd_error.h"
#include "sub_internal.h"

/* Fixed by RFC 6455 section 1.3: it proves the server read our key. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int herald__ws_key(char *key, size_t size)
{
    uint8_t raw[16];
    if (size <= HERALD__WS_KEY_LEN) return HD_EINVAL;
    int rv = herald__random_bytes(raw, sizeof raw);
    if (rv != 0) return rv;
    key[hd_base64_encode(raw, sizeof raw, key)] = '\0';
    return 0;
}

int herald__ws_accept(const char *key, char *accept, size_t size)
{
    char in[HERALD__WS_KEY_LEN + sizeof ws_guid];
    size_t klen = strlen(key);
    if (size <= HERALD__WS_ACCEPT_LEN || klen > HERALD__WS_KEY_LEN) return HD_EINVAL;
    memcpy(in, key, klen);
    memcpy(in + klen, ws_guid, sizeof ws_guid - 1);
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (EVP_Digest(in, klen + sizeof ws_guid - 1, md, &md_len, EVP_sha1(), NULL) != 1 ||
        md_len != 20) {
        return HD_ENOMEM; /* only an allocation can fail for SHA-1 */
    }
    accept[hd_base64_encode(md, md_len, accept)] = '\0';
    return 0;
}

int herald__ws_request(struct herald__buf *out, const char *host, const char *port,
                       const char *path, const char *key, const char *token)
{
    bool v6 = strchr(host, ':') != NULL;
    int rv = herald__buf_printf(out,
                                "GET %s/v1/subscribe?frames=binary HTTP/1.1\r\n"
                                "Host: %s%s%s:%s\r\n"
                                "User-Agent: herald/0.1\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                                "Sec-WebSocket-Version: 13\r\n",
                                path, v6 ? "[" : "", host, v6 ? "]" : "", port, key);
    if (rv == 0) rv = herald__auth_header(out, token);
    if (rv == 0) rv = herald__buf_append(out, "\r\n", 2);
    return rv;
}

/* True when the comma-separated header value has token (case-insensitive). */
static bool has_token(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    for (const char *p = value; *p != '\0';) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *end = p;
        while (*end != '\0' && *end != ',') end++;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t')) last--;
        if ((size_t)(last - p) == tlen && strncasecmp(p, token, tlen) == 0) return true;
        p = end;
    }
    return false;
}

static int check_headers(const struct herald__resp *r, const char *key, char *why,
                         size_t why_size)
{
    char want[HERALD__WS_ACCEPT_LEN + 1];
    int rv = herald__ws_accept(key, want, sizeof want);
    if (rv != 0) return rv;
    const char *upgrade = r->ws_upgrade.data ? r->ws_upgrade.data : "";
    const char *conn = r->ws_connection.data ? r->ws_connection.data : "";
    const char *accept = r->ws_accept.data ? r->ws_accept.data : "";
    if (!has_token(upgrade, "websocket")) {
        snprintf(why, why_size, "101 without Upgrade: websocket");
    } else if (!has_token(conn, "upgrade")) {
        snprintf(why, why_size, "101 without Connection: Upgrade");
    } else if (strcmp(accept, want) != 0) {
        snprintf(why, why_size, "Sec-WebSocket-Accept \"%.40s\" does not match the key",
                 accept);
    } else {
        return 0;
    }
    return HD_ECORRUPT;
}

int herald__ws_check_answer(const char *head, size_t len, const char *key, int *status,
                            char *why, size_t why_size)
{
    struct herald__resp r;
    herald__resp_init(&r, NULL, NULL);
    *status = 0;
    long n = herald__resp_feed(&r, head, len);
    int rv;
    if (n < 0 || !r.headers_done) {
        snprintf(why, why_size, "handshake answer is not HTTP");
        rv = HD_ECORRUPT;
    } else if ((*status = r.status) != 101) {
        snprintf(why, why_size, "handshake answered HTTP %d", r.status);
        switch (r.status) {
        case 404: rv = HD_ENOTFOUND; break;
        case 429: rv = HD_EUNAVAIL; break;
        default: rv = r.status >= 500 ? HD_EUNAVAIL : r.status >= 400 ? HD_EINVAL : HD_ECORRUPT;
        }
    } else {
        rv = check_headers(&r, key, why, why_size);
    }
    herald__resp_close(&r);
    return rv;
}
