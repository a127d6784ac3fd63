/// Limits on what a client controls. Enforced by the parser and decoder,
/// configured by the server.
public struct Limits: Sendable, Equatable {
    /// The whole head: request line, fields and the blank line.
    public var maxHeadBytes: Int
    public var maxRequestLineBytes: Int
    public var maxHeaderCount: Int
    public var maxBodyBytes: Int
    /// Chunk extensions and trailer fields of one chunked body, which carry no data.
    public var maxChunkOverheadBytes: Int

    public init(
        maxHeadBytes: Int = 32768,
        maxRequestLineBytes: Int = 8192,
        maxHeaderCount: Int = 100,
        maxBodyBytes: Int = 1_048_576,
        maxChunkOverheadBytes: Int = 16384
    ) {
        self.maxHeadBytes = maxHeadBytes
        self.maxRequestLineBytes = min(maxRequestLineBytes, maxHeadBytes)
        self.maxHeaderCount = maxHeaderCount
        self.maxBodyBytes = maxBodyBytes
        self.maxChunkOverheadBytes = maxChunkOverheadBytes
    }
}
