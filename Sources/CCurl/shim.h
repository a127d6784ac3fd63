#ifndef IAMPORT_PROXY_CCURL_SHIM_H
#define IAMPORT_PROXY_CCURL_SHIM_H

// Swift cannot call C variadic functions, so each curl_easy_setopt /
// curl_easy_getinfo / curl_multi_setopt / curl_share_setopt use gets a typed
// wrapper named for the type of its argument.

#include <curl/curl.h>
#include <openssl/ssl.h>

static inline CURLcode ccurl_easy_setopt_long(CURL *h, CURLoption o, long v) {
    return curl_easy_setopt(h, o, v);
}
static inline CURLcode ccurl_easy_setopt_string(CURL *h, CURLoption o, const char *v) {
    return curl_easy_setopt(h, o, v);
}
static inline CURLcode ccurl_easy_setopt_pointer(CURL *h, CURLoption o, void *v) {
    return curl_easy_setopt(h, o, v);
}

static inline CURLcode ccurl_easy_getinfo_pointer(CURL *h, CURLINFO i, void **v) {
    return curl_easy_getinfo(h, i, v);
}
static inline CURLcode ccurl_easy_getinfo_socket(CURL *h, CURLINFO i, curl_socket_t *v) {
    return curl_easy_getinfo(h, i, v);
}

typedef int (*ccurl_closesocket_callback)(void *clientp, curl_socket_t item);
static inline CURLcode ccurl_easy_setopt_closesocket_callback(CURL *h, ccurl_closesocket_callback f) {
    return curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, f);
}

typedef int (*ccurl_socket_callback)(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);
typedef int (*ccurl_timer_callback)(CURLM *multi, long timeout_ms, void *userp);

static inline CURLMcode ccurl_multi_setopt_pointer(CURLM *m, CURLMoption o, void *v) {
    return curl_multi_setopt(m, o, v);
}
static inline CURLMcode ccurl_multi_setopt_socket_callback(CURLM *m, ccurl_socket_callback f) {
    return curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, f);
}
static inline CURLMcode ccurl_multi_setopt_timer_callback(CURLM *m, ccurl_timer_callback f) {
    return curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, f);
}

// TLS connections read ahead: OpenSSL asks the socket for as much as its
// buffer holds, so a record arrives in one recv (without it, two: the
// record's 5-byte header, then its body). libcurl calls this with each new
// connection's SSL_CTX before the handshake (OpenSSL backend only).
static CURLcode ccurl_ssl_ctx_read_ahead(CURL *easy, void *ssl_ctx, void *userp) {
    (void)easy;
    (void)userp;
    SSL_CTX_set_read_ahead((SSL_CTX *)ssl_ctx, 1);
    return CURLE_OK;
}
static inline CURLcode ccurl_easy_setopt_ssl_read_ahead(CURL *h) {
    return curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, ccurl_ssl_ctx_read_ahead);
}
// Whether a connected TLS handle's connection reads ahead (for tests): -1
// when it has no OpenSSL connection.
static inline int ccurl_easy_tls_reads_ahead(CURL *h) {
    struct curl_tlssessioninfo *info = NULL;
    if (curl_easy_getinfo(h, CURLINFO_TLS_SSL_PTR, &info) != CURLE_OK || info == NULL
        || info->backend != CURLSSLBACKEND_OPENSSL || info->internals == NULL) {
        return -1;
    }
    return SSL_get_read_ahead((SSL *)info->internals);
}

// CURLSHOPT_SHARE / CURLSHOPT_UNSHARE: libcurl reads the kind of data as an int.
static inline CURLSHcode ccurl_share_setopt_lock_data(CURLSH *s, CURLSHoption o, curl_lock_data d) {
    return curl_share_setopt(s, o, (int)d);
}

// CURLMsg carries a union; these read its fields without Swift touching it.
static inline CURLMSG ccurl_msg_kind(const CURLMsg *m) { return m->msg; }
static inline CURL *ccurl_msg_easy(const CURLMsg *m) { return m->easy_handle; }
static inline CURLcode ccurl_msg_result(const CURLMsg *m) { return m->data.result; }

#endif
