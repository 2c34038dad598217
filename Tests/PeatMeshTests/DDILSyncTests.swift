import PeatCRDT
import Testing

@testable import PeatMesh
@testable import PeatStorage

/// Sync on slow, lossy and intermittent links (docs/adr/0008-ddil-sync.md), driven without a network:
/// which frame a session chooses next, how many messages waiting updates become, and how much of a
/// large message a reconnected session sends again — all counted, none timed.
struct DDILSyncTests {
    /// A frame as the peer decodes it: the documents it carries (none for a part or control frame).
    private static func documentKeys(_ frame: [UInt8]) throws -> [DocumentKey] {
        guard case .documents(let messages) = try MeshMessage(decoding: frame) else { return [] }
        return messages.map(\.key)
    }

    /// About 1 KB of text that does not compress: each report costs its size on the wire.
    private static func report(_ n: Int) -> MeshEdit {
        var state = UInt64(n) &* 0x9E37_79B9_7F4A_7C15 | 1
        let text = String(
            (0..<1000).map { _ -> Character in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Character(Unicode.Scalar(UInt8(97 + (state >> 33) % 26)))
            })
        return .replace(["seq": .int(Int64(n)), "text": .string(text)])
    }

    /// A pair past its first exchange, with `count` FullHistory reports written on a and not yet sent.
    private static func pairWithBacklog(_ count: Int) throws -> SyncPair {
        var pair = SyncPair(try Replica("node-a"), try Replica("node-b"))
        try pair.exchange()
        for n in 0..<count { try pair.write(report(n), "contact_reports", "r\(n)", on: .aToB) }
        return pair
    }

    @Test func anAlertWrittenDuringABacklogIsTheNextFrameToLeave() throws {
        var pair = try Self.pairWithBacklog(300)
        // The backlog is on its way: a few frames have left.
        try pair.exchange(limit: 8)
        let alert = try pair.a.write(.replace(["level": .string("red")]), "alerts", "a1")
        let beacon = try pair.a.write(.replace(["lat": .double(59.3)]), "beacons", "b1")
        pair.ab.documentsChanged([beacon, alert])
        // Written after the beacon's key was queued, the alert still leaves first, then the beacon,
        // then the reports.
        let firstFrame = pair.nextFrame(.aToB)
        let first = try #require(firstFrame)
        #expect(try Self.documentKeys(first) == [alert])
        let secondFrame = pair.nextFrame(.aToB)
        let second = try #require(secondFrame)
        #expect(try Self.documentKeys(second) == [beacon])
        let thirdFrame = pair.nextFrame(.aToB)
        let third = try #require(thirdFrame)
        #expect(try Self.documentKeys(third).allSatisfy { $0.collection == "contact_reports" })
        // Every frame respects the part size, so no frame ahead of the alert is longer than that.
        #expect([first, second, third].allSatisfy { $0.count <= SyncSession.StateMachine.partSize + 512 })
    }

    @Test func anAlertOvertakesALargeDocumentBetweenTwoOfItsParts() throws {
        var pair = SyncPair(try Replica("node-a"), try Replica("node-b"))
        try pair.exchange()
        let big = String(repeating: "map tile row ", count: 40_000)  // ~520 KB
        try pair.write(.replace(["tile": .string(big)]), "contact_reports", "tile", on: .aToB)
        let started = try pair.exchange(limit: 20)
        #expect((started.kinds["part"] ?? 0) > 10)
        try pair.write(.replace(["level": .string("red")]), "alerts", "a1", on: .aToB)
        let nextFrame = pair.nextFrame(.aToB)
        let next = try #require(nextFrame)
        #expect(try Self.documentKeys(next) == [Replica.key("alerts", "a1")])
        // The pair goes on from the frame the alert overtook, and both arrive.
        _ = try pair.bReceive(next)
        try pair.exchange()
        #expect(try pair.b.value("alerts", "a1") == ["level": .string("red")])
        #expect(try pair.b.value("contact_reports", "tile") == ["tile": .string(big)])
    }

    @Test func updatesOfALatestOnlyDocumentWaitingToLeaveBecomeOneMessageOfTheNewest() throws {
        var pair = SyncPair(try Replica("node-a"), try Replica("node-b"))
        try pair.exchange()
        let key = Replica.key("beacons", "b1")
        // One at a time, each update crosses on its own.
        var oneByOne = 0
        for n in 0..<20 {
            try pair.write(.replace(["lat": .double(59 + Double(n) / 1000), "seq": .int(Int64(n))]), "beacons", "b1", on: .aToB)
            oneByOne += try pair.exchange().documentMessages[.aToB]?[key] ?? 0
        }
        #expect(oneByOne >= 20)
        // Fifty updates while the link is busy: only the newest state leaves, in one message.
        for n in 20..<70 {
            try pair.write(.replace(["lat": .double(59 + Double(n) / 1000), "seq": .int(Int64(n))]), "beacons", "b1", on: .aToB)
        }
        let coalesced = try pair.exchange()
        #expect(coalesced.documentMessages[.aToB]?[key] == 1)
        #expect(try pair.b.value("beacons", "b1")?["seq"] == .int(69))
    }

    @Test func aTransferCutByADisconnectionResumesWhereItStopped() throws {
        var pair = SyncPair(try Replica("node-a"), try Replica("node-b"))
        try pair.exchange()
        let big = String(repeating: "firmware block ", count: 40_000)  // ~600 KB
        try pair.write(.replace(["image": .string(big)]), "contact_reports", "fw", on: .aToB)
        let first = try pair.exchange(limit: 150)
        let held = pair.ba.held.byteCount
        #expect(held > 100 * 1024 && held <= first.partBytes)
        #expect(try pair.b.value("contact_reports", "fw") == nil)

        pair.reconnect()
        let second = try pair.exchange()
        #expect(try pair.b.value("contact_reports", "fw") == ["image": .string(big)])
        // Only what b did not hold crossed again: the two sessions together sent the message once.
        let message = first.partBytes - held + second.partBytes + held
        #expect(first.partBytes + second.partBytes <= message + SyncSession.StateMachine.partSize)
        #expect(second.partBytes < message - held / 2, "resumed with \(second.partBytes) of \(message) bytes")
        #expect(pair.ba.held.isEmpty)
    }

    @Test func aPeerThatLostWhatItHeldIsSentTheWholeMessageAgain() throws {
        var pair = SyncPair(try Replica("node-a"), try Replica("node-b"))
        try pair.exchange()
        let big = String(repeating: "firmware block ", count: 40_000)
        try pair.write(.replace(["image": .string(big)]), "contact_reports", "fw", on: .aToB)
        let first = try pair.exchange(limit: 150)
        #expect(pair.ba.held.byteCount > 0)
        // b restarted: it names no transfer in its hello, so a starts from byte 0.
        pair.reconnect(keepingTransfers: false)
        let second = try pair.exchange()
        #expect(try pair.b.value("contact_reports", "fw") == ["image": .string(big)])
        #expect(second.partBytes > first.partBytes)
    }

    @Test func aLinkThatDropsEveryFewFramesStillDeliversALargeDocumentOnce() throws {
        var pair = SyncPair(try Replica("node-a"), try Replica("node-b"))
        try pair.exchange()
        let big = String(repeating: "flapping link ", count: 30_000)  // ~420 KB
        try pair.write(.replace(["data": .string(big)]), "contact_reports", "flap", on: .aToB)
        var partBytes = 0
        var sessions = 0
        while try pair.b.value("contact_reports", "flap") == nil {
            sessions += 1
            try #require(sessions < 100, "did not converge")
            partBytes += try pair.exchange(limit: 40).partBytes
            pair.reconnect()
        }
        #expect(sessions > 5)
        #expect(try pair.b.value("contact_reports", "flap") == ["data": .string(big)])
        // Each session resumed the transfer: at most one part per session sent twice.
        #expect(partBytes <= big.utf8.count + 16 * 1024 + sessions * SyncSession.StateMachine.partSize)
    }

    @Test func heldTransfersAreBoundedPerPeer() throws {
        var held = HeldTransfers()
        for n in 0..<(HeldTransfers.maximumTransfers + 2) {
            let message = [UInt8](repeating: UInt8(n), count: 1000)
            _ = try held.receive(id: TransferID(of: message), offset: 0, total: message.count, bytes: Array(message.prefix(10)), maximumMessageSize: 1 << 20)
        }
        #expect(held.resumePoints.count == HeldTransfers.maximumTransfers)
        #expect(held.byteCount == HeldTransfers.maximumTransfers * 10)
        // The newest are the ones kept.
        let newest = [UInt8](repeating: UInt8(HeldTransfers.maximumTransfers + 1), count: 1000)
        #expect(held.resumePoints.contains { $0.id == TransferID(of: newest) && $0.offset == 10 })
    }

    @Test func aSendBudgetAllowsItsBurstThenItsRate() {
        var budget = SendBudget(rate: 10_000)
        #expect(budget.burst == 2500)
        #expect(budget.delay(at: .zero) == .zero)
        budget.spend(2000, at: .zero)
        #expect(budget.delay(at: .zero) == .zero)  // 473 bytes left of the burst
        budget.spend(2000, at: .zero)  // in debt by 1,554 bytes: 155.4 ms at 10,000 B/s
        #expect(budget.delay(at: .zero) == .nanoseconds(155_400_000))
        #expect(budget.delay(at: .milliseconds(100)) == .nanoseconds(55_400_000))
        #expect(budget.delay(at: .milliseconds(156)) == .zero)
        // A long quiet spell refills only up to the burst.
        #expect(budget.delay(at: .seconds(60)) == .zero)
        budget.spend(2500, at: .seconds(60))
        #expect(budget.delay(at: .seconds(60)) > .zero)
    }

    /// The session's writer loop on a simulated clock: wait for the budget, choose the frame, spend.
    @Test func insideASendBudgetTheRateHoldsAndAnAlertStillLeavesNext() throws {
        var pair = try Self.pairWithBacklog(200)
        let rate = 4000
        var budget = SendBudget(rate: rate)
        var now = Duration.zero
        var sent = 0
        var alertWrittenAt: Duration?
        var alertLeftAt: Duration?
        var framesBetween = 0
        var frames = 0
        while true {
            now += budget.delay(at: now)
            guard let frame = pair.nextFrame(.aToB) else { break }
            frames += 1
            try #require(frames < 10_000)
            budget.spend(frame.count, at: now)
            sent += frame.count + SendBudget.frameOverhead
            _ = try pair.bReceive(frame)
            var replies = 0
            while let reply = pair.nextFrame(.bToA) {
                replies += 1
                let kind = SyncPair.kind(try MeshMessage(decoding: reply))
                try #require(replies < 1000, "frame \(frames): \(kind)")
                _ = try pair.ab.receive(reply, documents: pair.a.repository)
            }
            if alertWrittenAt != nil, alertLeftAt == nil {
                if try Self.documentKeys(frame).contains(Replica.key("alerts", "a1")) { alertLeftAt = now } else { framesBetween += 1 }
            }
            if alertWrittenAt == nil, now >= .seconds(10) {
                try pair.write(.replace(["level": .string("red")]), "alerts", "a1", on: .aToB)
                alertWrittenAt = now
            }
            // The bytes sent never exceed the rate plus one burst and one frame.
            #expect(Double(sent) <= Double(rate) * Double(now.nanoseconds) / 1e9 + Double(budget.burst + 2 * SyncSession.StateMachine.partSize))
        }
        #expect(framesBetween == 0)
        let written = try #require(alertWrittenAt)
        let left = try #require(alertLeftAt)
        // It waited for at most the frame before it to be paid for.
        #expect(left - written <= .milliseconds(Int64(1000 * (SyncSession.StateMachine.partSize + 600) / rate)))
        #expect(now > .seconds(20))  // the backlog (~200 KB) took most of a minute at 4 KB/s
    }

    @Test func priorityRegistryDefaultsAndOverrides() {
        let defaults = SyncPriorityRegistry()
        #expect(defaults.priority(for: "alerts", mode: .fullHistory) == .high)
        #expect(defaults.priority(for: "commands", mode: .fullHistory) == .high)
        #expect(defaults.priority(for: "beacons", mode: .latestOnly) == .normal)
        #expect(defaults.priority(for: "contact_reports", mode: .fullHistory) == .low)
        let overridden = SyncPriorityRegistry(overrides: ["contact_reports": .high, "alerts": .low])
        #expect(overridden.priority(for: "contact_reports", mode: .fullHistory) == .high)
        #expect(overridden.priority(for: "alerts", mode: .fullHistory) == .low)
        #expect(SyncPriority(parsing: "normal") == .normal && SyncPriority(parsing: "urgent") == nil)
    }
}

extension SyncPair {
    /// Delivers one frame from a to b by hand (after `nextFrame(.aToB)`).
    mutating func bReceive(_ frame: [UInt8]) throws -> SyncSession.StateMachine.Outcome {
        try ba.receive(frame, documents: b.repository)
    }
}
