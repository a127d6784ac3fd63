#define _GNU_SOURCE
#include "csystem.h"
#include <sys/epoll.h>
#include <sys/socket.h>

const uint32_t csystem_epollin = EPOLLIN;
const uint32_t csystem_epollout = EPOLLOUT;
const uint32_t csystem_epollerr = EPOLLERR;
const uint32_t csystem_epollhup = EPOLLHUP;
const uint32_t csystem_epollrdhup = EPOLLRDHUP;
const uint32_t csystem_epollet = EPOLLET;
const uint32_t csystem_epollexclusive = EPOLLEXCLUSIVE;

const int csystem_msg_nosignal = MSG_NOSIGNAL;
const int csystem_shut_wr = SHUT_WR;

int csystem_accept4(int fd, struct sockaddr *addr, socklen_t *len) {
    return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
