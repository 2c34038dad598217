import NIOCore

extension NIOAsyncChannel {
    /// Releases a wrapped channel that will never be used through `executeThenClose` (a rejected
    /// handshake, a duplicate connection, a connection nobody claimed) and closes it.
    ///
    /// An `NIOAsyncChannel` whose writer is released unfinished traps, and `executeThenClose` is
    /// async; this is the synchronous teardown for those paths. It must not run once
    /// `executeThenClose` has started.
    func finishUnused() {
        (self as any UnusedChannelTeardown).finishOutboundWriter()
        channel.close(promise: nil)
    }
}

/// Reaches the outbound writer that NIO deprecated in favour of `executeThenClose`, for the one
/// teardown path that cannot use it (called through the protocol so the deprecation is contained).
private protocol UnusedChannelTeardown {
    func finishOutboundWriter()
}

extension NIOAsyncChannel: UnusedChannelTeardown {
    @available(*, deprecated, message: "Only for finishUnused()")
    fileprivate func finishOutboundWriter() {
        outbound.finish()
    }
}
