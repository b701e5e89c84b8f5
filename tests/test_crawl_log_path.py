"""Crawl logs are kept apart per database: job ids are per database, the data dir may not be."""

from crawler import crawl_runner


def test_two_databases_sharing_a_data_dir_log_job_1_to_different_files(monkeypatch):
    urls = iter(["postgresql://app:s3cret@db1.internal:5432/forecourt",
                 "postgresql://app:s3cret@db2.internal:5432/forecourt"])
    monkeypatch.setattr(crawl_runner, "database_url", lambda: next(urls))
    first, second = crawl_runner.log_path(1), crawl_runner.log_path(1)
    assert first.name == second.name == "job-1.log"
    assert first.parent != second.parent and first.parent.parent == second.parent.parent
    assert first.parent.name.startswith("forecourt-") and "s3cret" not in str(first)


def test_a_database_name_is_made_safe_as_a_directory_name(monkeypatch):
    monkeypatch.setattr(crawl_runner, "database_url",
                        lambda: "postgresql://localhost/we..ird%2Fname")
    tag = crawl_runner.database_tag()
    assert "/" not in tag and tag.split("-")[0].startswith("we..ird")


def test_a_crawl_here_that_fails_unexpectedly_is_settled_not_left_running(db, monkeypatch,
                                                                           tmp_path):
    # The log cannot be opened (the data dir went bad after the command's check): the job
    # must end failed with the reason, not stay 'running' where `jobs cancel` cannot reach
    # it and every later `forecourt crawl` of the dealer is refused.
    import pytest

    from crawler.cli.crawl import crawl_now
    from crawler.config import reset_settings
    from crawler.db import dealers as dealers_db
    from crawler.db import jobs as jobs_db
    from crawler.errors import ForecourtError

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    dealers_db.create(db, slug="d1", name="D1", website_url="http://127.0.0.1:9/",
                      platform="generic")
    monkeypatch.setenv("FORECOURT_DATA_DIR", str(blocker / "data"))
    reset_settings()
    try:
        # one line naming the job (crawler.cli.crash), not the OSError's traceback
        with pytest.raises(ForecourtError, match="crawl job .* Not a directory"):
            crawl_now(db, "d1")
    finally:
        monkeypatch.undo()
        reset_settings()
    [job] = [jobs_db.get(db, r["id"]) for r in db.execute("select id from jobs").fetchall()]
    assert job.state == "failed", job
    assert "Not a directory" in (job.error or ""), job.error
