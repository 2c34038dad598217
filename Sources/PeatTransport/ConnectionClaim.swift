import NIOConcurrencyHelpers

/// The once-only right to a connection's frames (`withFrames`), shared by the implementations.
final class ConnectionClaim: Sendable {
    private let claimed = NIOLockedValueBox(false)

    /// Takes the claim; true only for the first caller.
    func take() -> Bool {
        claimed.withLockedValue { wasClaimed in
            defer { wasClaimed = true }
            return !wasClaimed
        }
    }

    var isTaken: Bool { claimed.withLockedValue { $0 } }

    /// `take()`, or the error a second `withFrames` gets.
    func takeForFrames() throws {
        guard take() else {
            throw TransportError(code: .protocolViolation, message: "withFrames was already used on this connection")
        }
    }

    /// Refuses a payload above the connection's maximum before anything is sent.
    static func checkSize(_ payload: [UInt8], maximum: Int) throws {
        guard payload.count <= maximum else {
            throw TransportError(code: .frameTooLarge, message: "a frame of \(payload.count) bytes exceeds the maximum of \(maximum)")
        }
    }
}
