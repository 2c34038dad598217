/// What `eventually` throws when a condition does not come true in time.
public struct TimedOut: Error, CustomStringConvertible {
    public let what: String
    public var description: String { "timed out waiting for \(what)" }

    public init(what: String) {
        self.what = what
    }
}

/// Waits until `condition` holds, checking every 20 ms, for at most `timeout`: for state that
/// settles without an event to await. Only the wait is bounded; what the condition checks is exact.
/// - Throws: `TimedOut` naming `what`; the condition's errors.
public func eventually(_ what: String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TimedOut(what: what) }
        try await Task.sleep(for: .milliseconds(20))
    }
}
