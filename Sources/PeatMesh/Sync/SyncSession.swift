import PeatTransport

/// Runs the mesh sync protocol over one authenticated connection until it closes: it only moves
/// frames between the connection and the session's state machine, which the coordinator runs.
///
/// Three tasks share the connection: the reader hands every frame to the coordinator, the writer
/// sends what the machine has queued whenever the doorbell rings (push on change, after
/// `pushDelay` to batch a burst), and the anti-entropy timer ticks the machine. The writer asks for
/// each frame only once the connection took the previous one (and, with a send budget, once the
/// budget allows), so the frame chosen is the one of the highest priority waiting at that moment. The session ends
/// when the connection closes, a frame is refused, or the coordinator finishes the doorbell (the
/// session was replaced or its peer lost).
package struct SyncSession {
    struct Timing: Sendable {
        var antiEntropyInterval: Duration
        var pushDelay: Duration
        var clock: any Clock<Duration>
        /// Sync state is saved every this many anti-entropy passes (and when the session ends).
        var ticksPerSave = 6
        /// Bytes per second the session may send (`PeatMesh.Configuration.peerRateLimit`).
        var rateLimit: Int?
    }

    let connection: any SyncConnection
    let coordinator: SyncCoordinator
    let timing: Timing
    let traffic: MeshTraffic

    /// Runs the session; returns why it ended (nil for an orderly close).
    func run(addresses: [String]) async -> (any Error)? {
        let (doorbell, ring) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let id = await coordinator.open(connection, addresses: addresses, doorbell: ring)
        var failure: (any Error)?
        do {
            try await connection.withFrames { inbound, outbound in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await write(id, outbound, doorbell) }
                    group.addTask { try await read(id, inbound) }
                    group.addTask { try await tick(id) }
                    // The first task to finish (the reader at the end of the connection, the writer when
                    // the doorbell is finished, or any error) ends the session.
                    defer { group.cancelAll() }
                    try await group.next()
                }
            }
        } catch {
            failure = error
        }
        await coordinator.close(id, failure: failure)
        await connection.close()
        return failure
    }

    private func write(_ id: SyncCoordinator.SessionID, _ outbound: SyncFrameWriter, _ doorbell: AsyncStream<Void>) async throws {
        try await write(id, outbound, doorbell, clock: timing.clock)
    }

    private func write<C: Clock<Duration>>(
        _ id: SyncCoordinator.SessionID, _ outbound: SyncFrameWriter, _ doorbell: AsyncStream<Void>, clock: C
    ) async throws {
        let origin = clock.now
        var budget = timing.rateLimit.map { SendBudget(rate: $0) }
        for await _ in doorbell {
            if timing.pushDelay > .zero { try await clock.sleep(for: timing.pushDelay) }
            while true {
                if let wait = budget?.delay(at: origin.duration(to: clock.now)), wait > .zero { try await clock.sleep(for: wait) }
                guard let frame = await coordinator.nextFrame(id) else { break }
                try await outbound.send(frame)
                budget?.spend(frame.count, at: origin.duration(to: clock.now))
                traffic.sent(frame.count)
            }
        }
    }

    private func read(_ id: SyncCoordinator.SessionID, _ inbound: SyncInboundFrames) async throws {
        for try await frame in inbound {
            traffic.received(frame.count)
            try await coordinator.receive(frame, on: id)
        }
    }

    private func tick(_ id: SyncCoordinator.SessionID) async throws {
        var ticks = 0
        while true {
            try await timing.clock.sleep(for: timing.antiEntropyInterval)
            ticks += 1
            await coordinator.tick(id, persist: ticks % timing.ticksPerSave == 0)
        }
    }
}
