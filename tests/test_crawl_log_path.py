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
