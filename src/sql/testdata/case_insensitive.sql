/* keywords and names in any case;
   quoted identifiers keep their spelling */
create source Events ("User Id" varchar(64), Amount INT, "select" Double, Ts timestamp(3),
  watermark for TS as ts - interval '30' seconds)
with ('Connector' = 'kafka', Properties.Bootstrap.Servers = 'localhost:9092');
create feature view spend as
select "user id" as uid, sum(AMOUNT) total, max("select") as "Max Select"
from EVENTS where events.amount > 0 group by "User Id";
