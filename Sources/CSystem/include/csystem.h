#ifndef IAMPORT_PROXY_CSYSTEM_H
#define IAMPORT_PROXY_CSYSTEM_H

// Linux interfaces that Swift's Glibc module does not import: the epoll
// event bits (an enum shadowed by same-named macros) and accept4, which
// needs _GNU_SOURCE.

#include <stdint.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

extern const uint32_t csystem_epollin;
extern const uint32_t csystem_epollout;
extern const uint32_t csystem_epollerr;
extern const uint32_t csystem_epollhup;
extern const uint32_t csystem_epollrdhup;
extern const uint32_t csystem_epollet;
extern const uint32_t csystem_epollexclusive;

extern const int csystem_msg_nosignal;
extern const int csystem_shut_wr;

int csystem_accept4(int fd, struct sockaddr *addr, socklen_t *len);

/// A counter written by one thread and read by others: the writer adds
/// with a relaxed load and store (no locked instruction, since no other
/// thread writes it), a reader loads it whole.
static inline void csystem_owner_add(uint64_t *counter, uint64_t amount) {
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + amount, __ATOMIC_RELAXED);
}

static inline uint64_t csystem_load(const uint64_t *counter) {
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

#endif
