# 物业投诉机器人 wuye — the bot as a container.
#   docker build -t wuye .
#   docker run -e BOT_TOKEN=… -v wuye-data:/app/data wuye          (embedded SQLite in /app/data)
#   docker compose up -d                                             (with PostgreSQL, see docker-compose.yml)
FROM python:3.11-slim

# MPLCONFIGDIR: matplotlib writes a font cache, and the app user's home (/app) is not writable.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TZ=Asia/Shanghai \
    MPLCONFIGDIR=/tmp/matplotlib

# fonts-noto-cjk: Chinese labels in the monthly statistics chart (matplotlib).
# tzdata: Asia/Shanghai for logs and the daily 09:00 summary.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-cjk tzdata \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 wuye \
    && useradd --system --uid 10001 --gid wuye --home-dir /app --no-create-home --shell /usr/sbin/nologin wuye

WORKDIR /app

# Pinned dependencies first: this layer is rebuilt only when the lock file changes.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# Then the project itself, without resolving anything again (everything is pinned above).
COPY . /tmp/src
RUN pip install --no-deps /tmp/src \
    && mkdir -p /app/config \
    && cp -r /tmp/src/config/. /app/config/ \
    && rm -rf /tmp/src \
    && mkdir -p /app/data \
    && chown -R wuye:wuye /app/data

# The default DATABASE_URL is sqlite+aiosqlite:///data/wuye.db, relative to /app.
VOLUME ["/app/data"]
USER wuye

CMD ["wuye", "run"]
