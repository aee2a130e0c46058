/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the origin rule (api/v1/cors.c): the list, the verdicts, the headers of the hook. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cors.h"
#include "hd_error.h"

/* A request with a path and, if origin is not NULL, an Origin header. */
struct fake_req {
    struct api_http_header h[2];
    struct api_http_request req;
};

static const struct api_http_request *fake(struct fake_req *f, const char *path,
                                           const char *origin)
{
    memset(f, 0, sizeof *f);
    f->h[0] = (struct api_http_header){"Host", 4, "127.0.0.1:7400", 14};
    size_t n = 1;
    if (origin != NULL) {
        f->h[1] = (struct api_http_header){"origin", 6, origin, strlen(origin)};
        n = 2;
    }
    f->req.method = HTTP_GET;
    f->req.http_major = 1;
    f->req.http_minor = 1;
    f->req.path = path;
    f->req.path_len = strlen(path);
    f->req.query = "";
    f->req.body = "";
    f->req.headers = f->h;
    f->req.n_headers = n;
    return &f->req;
}

static struct api_cors *parse_ok(const char *list)
{
    struct api_cors *cors = NULL;
    char err[512] = "";
    int rv = api_cors_parse(list, &cors, err, sizeof err);
    if (rv != 0) {
        fail_msg("parse '%s': %s", list, err);
    }
    return cors;
}

/* The hook's output for path and origin, NUL-terminated in out. */
static const char *hook(struct api_cors *cors, const char *path, const char *origin, char *out,
                        size_t out_len)
{
    struct fake_req f;
    size_t n = api_cors_head_hook(fake(&f, path, origin), 200, out, out_len - 1, cors);
    assert_true(n < out_len);
    out[n] = '\0';
    return out;
}

static void test_parse_list(void **state)
{
    (void)state;
    const char *good[] = {"*", "https://app.example.com", " http://localhost:8080 , https://a.b ",
                          "http://127.0.0.1:5000,http://[::1]:80", "HTTPS://APP.example.com",
                          "app+x://my-host_1"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        api_cors_free(parse_ok(good[i]));
    }
    const char *bad[] = {"", ",", "https://app.example.com/", "https://app.example.com/x",
                         "app.example.com", "*,https://a.b", "https://", "http://a:", "null",
                         "http://a:123456", "http://[]", "http://a b", "https://a.b?x=1",
                         "1http://a"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct api_cors *cors = NULL;
        char err[512] = "";
        int rv = api_cors_parse(bad[i], &cors, err, sizeof err);
        if (rv != HD_EINVAL) {
            fail_msg("'%s' was accepted", bad[i]);
        }
        assert_null(cors);
        /* Says what is wrong; the caller names the flag or config key. */
        assert_true(err[0] != '\0');
        assert_null(strstr(err, "--cors-origins"));
    }
}

static void test_verdicts(void **state)
{
    (void)state;
    struct api_cors *cors = parse_ok("https://app.example.com,http://127.0.0.1:8080");
    struct fake_req f;
    assert_int_equal(api_cors_check(cors, fake(&f, "/v1/status", "https://app.example.com")),
                     API_CORS_ALLOWED);
    /* Scheme and host are compared without case, as browsers lower them. */
    assert_int_equal(api_cors_check(cors, fake(&f, "/v1/status", "HTTPS://App.Example.com")),
                     API_CORS_ALLOWED);
    assert_int_equal(api_cors_check(cors, fake(&f, "/v1/status", "http://127.0.0.1:8080")),
                     API_CORS_ALLOWED);
    const char *refused[] = {"http://app.example.com", "https://app.example.com:443",
                             "https://evil.example.com", "http://127.0.0.1:8081",
                             "https://app.example.com.evil.com", "null", ""};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_int_equal(api_cors_check(cors, fake(&f, "/v1/status", refused[i])),
                         API_CORS_REFUSED);
    }
    assert_int_equal(api_cors_check(cors, fake(&f, "/v1/status", NULL)), API_CORS_NO_ORIGIN);
    /* No list at all: no origin is allowed. */
    assert_int_equal(api_cors_check(NULL, fake(&f, "/v1/status", "https://app.example.com")),
                     API_CORS_REFUSED);
    assert_int_equal(api_cors_check(NULL, fake(&f, "/v1/status", NULL)), API_CORS_NO_ORIGIN);
    api_cors_free(cors);
}

static void test_star(void **state)
{
    (void)state;
    struct api_cors *cors = parse_ok("*");
    struct fake_req f;
    assert_int_equal(api_cors_check(cors, fake(&f, "/v1/status", "https://anything.test:1")),
                     API_CORS_ALLOWED);
    assert_int_equal(api_cors_check(cors, fake(&f, "/v1/status", "null")), API_CORS_ALLOWED);
    assert_int_equal(api_cors_check(cors, fake(&f, "/v1/status", NULL)), API_CORS_NO_ORIGIN);
    /* Nothing that could not be echoed as one header value. */
    assert_int_equal(api_cors_check(cors, fake(&f, "/v1/status", "http://a b")), API_CORS_REFUSED);
    assert_int_equal(api_cors_check(cors, fake(&f, "/v1/status", "")), API_CORS_REFUSED);
    char longer[API_CORS_ORIGIN_MAX + 2];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(api_cors_check(cors, fake(&f, "/v1/status", longer)), API_CORS_REFUSED);
    char out[API_HTTP_HOOK_HEADERS_MAX];
    assert_string_equal(hook(cors, "/v1/tail", "https://anything.test:1", out, sizeof out),
                        "Access-Control-Allow-Origin: https://anything.test:1\r\n"
                        "Access-Control-Expose-Headers: Retry-After\r\n"
                        "Vary: Origin\r\n");
    api_cors_free(cors);
}

static void test_hook_headers(void **state)
{
    (void)state;
    struct api_cors *cors = parse_ok("http://127.0.0.1:8080");
    char out[API_HTTP_HOOK_HEADERS_MAX];
    /* Allowed: the origin as sent, Retry-After readable, caches keyed on Origin. */
    assert_string_equal(hook(cors, "/v1/channels/a/tail", "http://127.0.0.1:8080", out,
                             sizeof out),
                        "Access-Control-Allow-Origin: http://127.0.0.1:8080\r\n"
                        "Access-Control-Expose-Headers: Retry-After\r\n"
                        "Vary: Origin\r\n");
    /* Another origin, or none: only Vary. */
    assert_string_equal(hook(cors, "/v1/status", "http://127.0.0.1:8081", out, sizeof out),
                        "Vary: Origin\r\n");
    assert_string_equal(hook(cors, "/v1/status", NULL, out, sizeof out), "Vary: Origin\r\n");
    /* Outside the v1 API: nothing. */
    assert_string_equal(hook(cors, "/metrics", "http://127.0.0.1:8080", out, sizeof out), "");
    assert_string_equal(hook(cors, "/v1", "http://127.0.0.1:8080", out, sizeof out), "");
    /* An error the engine answers before the headers arrived: nothing. */
    assert_int_equal(api_cors_head_hook(NULL, 400, out, sizeof out, cors), 0);
    api_cors_free(cors);
}

static void test_preflight_headers(void **state)
{
    (void)state;
    /* What an allowed preflight's 204 lists (routes.c adds it to the hook's). */
    const char *h = API_CORS_PREFLIGHT_HEADERS;
    assert_non_null(strstr(h, "Access-Control-Allow-Methods: GET, POST, PUT, DELETE, OPTIONS\r\n"));
    assert_non_null(strstr(h, "Access-Control-Allow-Headers: Content-Type, Idempotency-Key, "
                              "Last-Event-ID, Authorization\r\n"));
    assert_non_null(strstr(h, "Access-Control-Max-Age: "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_list),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_star),
        cmocka_unit_test(test_hook_headers),
        cmocka_unit_test(test_preflight_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
