import CSystem
import EventLoops
import Testing

/// The epoll bits the loop writes as literals are the system's own.
@Suite struct EpollBitsTests {
    @Test func theLiteralsAreTheSystemsEpollBits() {
        #expect(EventLoop.readable == csystem_epollin)
        #expect(EventLoop.writable == csystem_epollout)
        #expect(EventLoop.hangup == csystem_epollhup | csystem_epollrdhup)
        #expect(EventLoop.error == csystem_epollerr)
        #expect(EventLoop.edgeTriggered == csystem_epollet)
    }
}
