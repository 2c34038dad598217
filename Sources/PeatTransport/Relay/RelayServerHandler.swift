import Logging
import NIOCore
import PeatIdentity

/// One client connection of the relay, after the HTTP upgrade: admission, then a listener (pings,
/// `incoming` announcements) or one side of a session, whose bytes it writes to the other side.
///
/// Forwarding is NIO's glue pattern: a read is passed to the partner's channel, and the next read
/// is only requested while the partner is writable and the byte-rate buckets allow it, so at most
/// one read plus the partner's write buffer (`sessionBufferBytes`) is held per direction.
final class RelayServerHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Mode {
        case admission(RelayServerHandshake)
        case listening(PeerIdentity)
        case waiting(PeerIdentity, token: [UInt8])
        case session(PeerIdentity, partner: RelayServerHandler)
        case closed
    }

    private let hub: RelayHub
    private let gate: AuthenticationGate
    private let admittedCallback: () -> Void
    private var mode: Mode
    private var peer: PeerIdentity?
    private var token: [UInt8]?
    private var wasSession = false
    private var buffer = ByteBuffer()
    private var context: ChannelHandlerContext?
    private var readHeld = false
    private var pausedUntil: Scheduled<Void>?
    private var deadline: Scheduled<Void>?
    private var slowReceiver: Scheduled<Void>?

    init(hub: RelayHub, certificateHash: [UInt8], gate: AuthenticationGate, admitted: @escaping () -> Void) {
        self.hub = hub
        self.gate = gate
        self.admittedCallback = admitted
        mode = .admission(RelayServerHandshake(accessKey: hub.configuration.accessKey, certificateHash: certificateHash))
    }

    private var address: String { context?.channel.remoteAddress?.ipAddress ?? "unknown" }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        schedule(in: hub.configuration.handshakeTimeout) { $0.close(refusing: (.timedOut, "admission did not complete in time")) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        teardown()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .admission(let handshake) = mode, handshake.sentServerHello {
            // A client that closes after the relay's proof: typically another formation's node, whose
            // check of that proof failed (it never proves anything to a relay that is not its own).
            hub.metrics.refused("admissionAbandoned")
            hub.logRefusal(address: address, reason: "admissionAbandoned", detail: "closed before proving the access key")
        }
        teardown()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if case .session(let peer, let partner) = mode {
            forward(bytes, from: peer, to: partner)
            return
        }
        buffer.writeBuffer(&bytes)
        do {
            while case .admission = mode, let frame = try RelayFrame.decode(from: &buffer) { handleAdmission(frame) }
            while let frame = try decodeAfterAdmission() { handle(frame) }
        } catch {
            hub.metrics.refused("malformedFrame")
            hub.logRefusal(address: address, reason: "malformedFrame", detail: "\(error)")
            close(refusing: (.protocolViolation, "malformed relay frame"))
        }
    }

    private func decodeAfterAdmission() throws -> RelayFrame? {
        switch mode {
        case .listening, .waiting: try RelayFrame.decode(from: &buffer)
        default: nil
        }
    }

    private func handleAdmission(_ frame: RelayFrame) {
        guard case .admission(var handshake) = mode else { return }
        let action = handshake.received(frame)
        mode = .admission(handshake)
        switch action {
        case .send(let reply):
            write(reply)
        case .refuse(let reason, let message):
            hub.metrics.refused(reason.description)
            hub.logRefusal(address: address, reason: reason.description, detail: message)
            close(refusing: (reason, message))
        case .admitted(let peer, let intent):
            deadline?.cancel()
            gate.isOpen = true
            admittedCallback()
            self.peer = peer
            admit(peer, intent: intent)
        }
    }

    private func admit(_ peer: PeerIdentity, intent: RelayIntent) {
        switch hub.admitted(self, peer: peer, intent: intent) {
        case .refused(let reason, let message):
            hub.metrics.refused(reason.description)
            hub.logRefusal(address: address, reason: reason.description, detail: message)
            self.peer = nil  // never counted by the hub
            close(refusing: (reason, message))
        case .listening:
            mode = .listening(peer)
            write(RelayFrame(kind: .admitted))
            schedule(in: hub.configuration.idleTimeout) { $0.close(refusing: (.timedOut, "no traffic on the listen connection")) }
        case .waiting:
            if case .connect(_, let token) = intent { self.token = token }
            mode = .waiting(peer, token: token ?? [])
        case .paired(let dialer):
            wasSession = true  // the hub counts a session once, on its accepting side
            start(partner: dialer)
            dialer.start(partner: self)
        }
    }

    private func handle(_ frame: RelayFrame) {
        switch (mode, frame.kind) {
        case (.listening, .ping):
            schedule(in: hub.configuration.idleTimeout) { $0.close(refusing: (.timedOut, "no traffic on the listen connection")) }
            write(RelayFrame(kind: .pong, payload: frame.payload))
        case (.listening, .pong):
            break
        default:
            hub.metrics.refused(RelayRefusal.protocolViolation.description)
            hub.logRefusal(address: address, reason: "protocolViolation", detail: "\(frame.kind) frame after admission")
            close(refusing: (.protocolViolation, "unexpected \(frame.kind) frame"))
        }
    }

    // MARK: Sessions

    /// Tells a listener that `device` wants a session under `token`.
    func announce(from device: DeviceID, token: [UInt8]) {
        write(RelayFrame(kind: .incoming, payload: device.rawRepresentation + token))
    }

    /// Paired: from now on bytes go to `partner`.
    private func start(partner: RelayServerHandler) {
        guard let peer, let context else { return }
        deadline?.cancel()
        mode = .session(peer, partner: partner)
        write(RelayFrame(kind: .sessionStarted))
        // A client sends nothing before sessionStarted; anything already buffered belongs to the session.
        if buffer.readableBytes > 0 {
            let early = buffer
            buffer = ByteBuffer()
            forward(early, from: peer, to: partner)
        }
        context.read()
    }

    private func forward(_ bytes: ByteBuffer, from peer: PeerIdentity, to partner: RelayServerHandler) {
        guard let target = partner.context else { return }
        let count = bytes.readableBytes
        target.writeAndFlush(partner.wrapOutboundOut(bytes), promise: nil)
        if let pause = hub.spend(count, from: peer.deviceID) { pauseReading(for: pause) }
    }

    private func pauseReading(for delay: TimeAmount) {
        guard pausedUntil == nil, let context else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        pausedUntil = context.eventLoop.scheduleTask(in: delay) {
            let handler = bound.value
            handler.pausedUntil = nil
            if let peer = handler.peer, let more = handler.hub.pause(for: peer.deviceID) {
                handler.pauseReading(for: more)
            } else {
                handler.resumeReading()
            }
        }
    }

    /// Issues a held read once the partner is writable and no bucket pauses this side.
    func resumeReading() {
        guard readHeld, pausedUntil == nil, case .session(_, let partner) = mode, partner.context?.channel.isWritable ?? false,
            let context
        else { return }
        readHeld = false
        context.read()
    }

    func read(context: ChannelHandlerContext) {
        if case .session(_, let partner) = mode, pausedUntil != nil || !(partner.context?.channel.isWritable ?? false) {
            readHeld = true
            return
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        defer { context.fireChannelWritabilityChanged() }
        guard case .session(_, let partner) = mode else { return }
        if context.channel.isWritable {
            slowReceiver?.cancel()
            slowReceiver = nil
            partner.resumeReading()
        } else if slowReceiver == nil {
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            slowReceiver = context.eventLoop.scheduleTask(in: .nanoseconds(hub.configuration.slowReceiverTimeout.nanoseconds)) {
                let handler = bound.value
                handler.hub.metrics.droppedReceivers.increment()
                handler.hub.logger.info(
                    "Relay dropped a slow receiver", metadata: ["device_id": "\(handler.peer?.deviceID.description ?? "?")"])
                handler.close(refusing: nil)
            }
        }
    }

    // MARK: Writing and closing

    private func write(_ frame: RelayFrame) {
        guard let context else { return }
        context.writeAndFlush(wrapOutboundOut(frame.buffer(context.channel.allocator)), promise: nil)
    }

    /// Closes this connection, first telling the client why when `refusing` is given.
    func close(refusing refusal: (RelayRefusal, String)?) {
        guard let context else { return }
        if case .closed = mode { return }
        if let (reason, message) = refusal, !isSession {
            let out = RelayProtocol.refusal(reason, message).buffer(context.channel.allocator)
            context.writeAndFlush(wrapOutboundOut(out)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
        teardown()
    }

    private var isSession: Bool {
        if case .session = mode { return true }
        return false
    }

    private func teardown() {
        let partner: RelayServerHandler?
        if case .session(_, let other) = mode { partner = other } else { partner = nil }
        if case .closed = mode { return }
        mode = .closed
        for task in [deadline, pausedUntil, slowReceiver] { task?.cancel() }
        if let peer { hub.closed(self, peer: peer, wasSession: wasSession, token: token) }
        peer = nil
        partner?.close(refusing: nil)
    }

    private func schedule(in duration: Duration, _ body: @escaping (RelayServerHandler) -> Void) {
        guard let context else { return }
        deadline?.cancel()
        let bound = NIOLoopBound((self, body), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: .nanoseconds(duration.nanoseconds)) {
            let (handler, body) = bound.value
            body(handler)
        }
    }
}
