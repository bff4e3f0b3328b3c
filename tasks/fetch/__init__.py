"""Getting bytes: resumable http(s) fetch, safe archive extraction, yt-dlp, video-id lists."""
