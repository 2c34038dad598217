import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs the built `peat-mesh-node` executable as operators do: a fresh process, an explicit
/// environment (nothing inherited), standard output and error captured.
final class NodeProcess {
    /// The executable next to this test bundle in the build folder.
    static let executableURL: URL = {
        if let override = ProcessInfo.processInfo.environment["PEAT_NODE_BINARY"] {
            return URL(fileURLWithPath: override)
        }
        let testBinary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: testBinary).deletingLastPathComponent()
        // On Linux the test binary is `<bin>/peat-meshPackageTests.xctest`; on macOS it sits inside a bundle.
        while !FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("peat-mesh-node").path),
            directory.pathComponents.count > 1
        {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent("peat-mesh-node")
    }()

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
        var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
        var stderrLines: [String] { stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
    }

    let process = Process()
    private let stdoutPipe = Pipe()
    private let stderrPipe = Pipe()
    private var stdoutBuffer = Data()

    /// - Parameter namespace: Run inside this network namespace (`ip netns exec`), as a pod would.
    init(arguments: [String] = [], environment: [String: String], namespace: String? = nil) throws {
        if let namespace {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", namespace, Self.executableURL.path] + arguments
        } else {
            process.executableURL = Self.executableURL
            process.arguments = arguments
        }
        process.environment = environment
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// Runs to completion (bounded by `timeout`) and returns what the process printed.
    static func run(_ arguments: [String] = [], environment: [String: String], timeout: TimeInterval = 30) throws -> Result {
        let node = try NodeProcess(arguments: arguments, environment: environment)
        return try node.finish(timeout: timeout)
    }

    /// Reads standard output until a line contains `text`, for at most `timeout` seconds.
    /// - Returns: Everything read so far.
    @discardableResult
    func waitForOutput(containing text: String, timeout: TimeInterval = 30) throws -> String {
        let fd = stdoutPipe.fileHandleForReading.fileDescriptor
        let deadline = Date().addingTimeInterval(timeout)
        while !String(decoding: stdoutBuffer, as: UTF8.self).contains(text) {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { throw NodeProcessError.timedOut(waitingFor: text, output: String(decoding: stdoutBuffer, as: UTF8.self)) }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(remaining, 1) * 1000))
            guard ready > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = read(fd, &chunk, chunk.count)
            guard count > 0 else { throw NodeProcessError.exited(output: String(decoding: stdoutBuffer, as: UTF8.self)) }
            stdoutBuffer.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: stdoutBuffer, as: UTF8.self)
    }

    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits for the process to exit (killing it after `timeout`) and collects its output.
    func finish(timeout: TimeInterval = 30) throws -> Result {
        let deadline = Date().addingTimeInterval(timeout)
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        if process.isRunning, exited.wait(timeout: .now() + max(0, deadline.timeIntervalSinceNow)) == .timedOut {
            process.terminate()
            throw NodeProcessError.timedOut(waitingFor: "exit", output: String(decoding: stdoutBuffer, as: UTF8.self))
        }
        process.waitUntilExit()
        stdoutBuffer.append(stdoutPipe.fileHandleForReading.readDataToEndOfFile())
        let errors = stderrPipe.fileHandleForReading.readDataToEndOfFile()
        return Result(
            status: process.terminationStatus,
            stdout: String(decoding: stdoutBuffer, as: UTF8.self),
            stderr: String(decoding: errors, as: UTF8.self))
    }

    deinit {
        if process.isRunning { process.terminate() }
    }
}

enum NodeProcessError: Error, CustomStringConvertible {
    case timedOut(waitingFor: String, output: String)
    case exited(output: String)

    var description: String {
        switch self {
        case .timedOut(let text, let output): "timed out waiting for \(text); output so far:\n\(output)"
        case .exited(let output): "the node exited early; output:\n\(output)"
        }
    }
}
